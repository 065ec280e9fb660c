"""Staff sign-in with a PIN, roles, CSRF tokens, session expiry and throttled attempts.

Roles: ``door``, ``merch``, ``lead``; a lead may do everything. Wrong PINs are throttled per client:
after a few free attempts each further one must wait twice as long as the one before.
"""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
import time
from collections.abc import Callable

from flask import (
    Blueprint,
    abort,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from markupsafe import Markup

from kit.secrets import Secrets, SecretsError
from kit.web.context import kit

log = logging.getLogger("fieldkit.web.auth")
bp = Blueprint("auth", __name__)

FREE_ATTEMPTS = 3
MAX_DELAY_SECONDS = 300
ATTEMPT_WINDOW_SECONDS = 3600
ROLE_HOME = {"door": "/door", "merch": "/merch", "lead": "/"}


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def csrf_field() -> Markup:
    return Markup(f'<input type="hidden" name="csrf_token" value="{csrf_token()}">')


def current_role() -> str | None:
    role = session.get("role")
    if not role:
        return None
    minutes = kit().config["web.session_minutes"]
    if time.time() - session.get("seen", 0) > minutes * 60:
        session.clear()
        return None
    session["seen"] = time.time()
    return role


def role_allows(role: str | None, needed: str) -> bool:
    return role is not None and (role == needed or role == "lead")


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def require_role(needed: str) -> Callable:
    """Decorator: the signed-in role must be ``needed`` (or lead). Pages redirect, APIs answer 401/403."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            role = current_role()
            if role is None:
                if _wants_json():
                    return jsonify(error="sign in first", code="unauthenticated"), 401
                return redirect(url_for("auth.login", next=request.full_path))
            if not role_allows(role, needed):
                if _wants_json():
                    return jsonify(error=f"this needs the {needed} role", code="forbidden"), 403
                return render_template("kit/forbidden.html", needed=needed), 403
            g.role = role
            return view(*args, **kwargs)

        wrapper.required_role = needed
        return wrapper

    return decorate


def check_csrf() -> None:
    """Every state-changing request from a browser session must carry the session's CSRF token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if request.endpoint in ("auth.login",) and "csrf" not in session:
        return  # first visit: the login form's own token check happens below
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not expected or not hmac.compare_digest(sent, expected):
        log.warning("event=csrf_rejected path=%s client=%s", request.path, request.remote_addr)
        if _wants_json():
            abort(make_response(jsonify(error="missing or wrong CSRF token; reload the page", code="csrf"), 400))
        abort(400, "The form expired. Go back, reload the page and try again.")


# --- throttling ---------------------------------------------------------------------------------

def _client() -> str:
    return request.remote_addr or "unknown"


def wait_seconds(client: str) -> int:
    """How long this client must wait before its next attempt (0 = may try now)."""
    db = kit().db
    now = time.time()
    rows = db.query("SELECT at FROM kit_auth_failures WHERE client = ? AND at > ? ORDER BY at",
                    (client, now - ATTEMPT_WINDOW_SECONDS))
    if len(rows) < FREE_ATTEMPTS:
        return 0
    delay = min(2 ** (len(rows) - FREE_ATTEMPTS + 1), MAX_DELAY_SECONDS)
    return max(0, int(rows[-1]["at"] + delay - now + 0.999))


def record_failure(client: str) -> None:
    with kit().db.transaction() as conn:
        conn.execute("INSERT INTO kit_auth_failures (client, at) VALUES (?, ?)", (client, time.time()))
        conn.execute("DELETE FROM kit_auth_failures WHERE at < ?", (time.time() - ATTEMPT_WINDOW_SECONDS,))


def clear_failures(client: str) -> None:
    with kit().db.transaction() as conn:
        conn.execute("DELETE FROM kit_auth_failures WHERE client = ?", (client,))


@bp.route("/login", methods=["GET", "POST"])
def login():
    error, status = None, 200
    next_url = request.values.get("next") or ""
    if not next_url.startswith("/") or next_url.startswith("//"):
        next_url = ""
    if request.method == "POST":
        client = _client()
        wait = wait_seconds(client)
        pin = (request.form.get("pin") or "").strip()
        if wait:
            error, status = f"Too many wrong PINs. Try again in {wait} s.", 429
            log.warning("event=login_throttled client=%s wait=%s", client, wait)
        elif not pin.isdigit() or len(pin) > 12:
            error, status = "A PIN is 4 to 12 digits.", 400
        else:
            try:
                role = Secrets(kit().config.secrets_dir).role_for_pin(pin)
            except SecretsError as e:
                role, error, status = None, str(e), 500
            if role:
                clear_failures(client)
                session.clear()
                session.permanent = True
                session.update(role=role, seen=time.time())
                csrf_token()
                log.info("event=login role=%s client=%s", role, client)
                return redirect(next_url or ROLE_HOME[role])
            if not error:
                record_failure(client)
                log.warning("event=login_failed client=%s", client)
                wait = wait_seconds(client)
                error = "Wrong PIN." + (f" Wait {wait} s before the next try." if wait else "")
                status = 401
    return render_template("kit/login.html", error=error, next=next_url, wait=wait_seconds(_client())), status


@bp.route("/logout", methods=["POST"])
def logout():
    session.clear()
    return redirect(url_for("auth.login"))
