"""Staff sign-in with a PIN, roles, CSRF tokens, session expiry and throttled attempts.

Roles: ``door``, ``merch``, ``lead``; a lead may do everything. Wrong PINs are throttled per client
address: after a few free attempts each further one waits twice as long as the one before, but never
more than ``web.login_max_wait_seconds`` after that address's last wrong PIN, so a fumbling volunteer
cannot lock a door tablet out. Because sign-in is by PIN alone, the whole kit also accepts at most
``web.login_failures_per_minute`` wrong PINs a minute from all addresses together. The state is in the
database (``kit_auth_failures``). The sign-in form carries a CSRF token like every other form: the
sign-in page sets it in the (not yet signed-in) session cookie and the POST must send it back.
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
    current_app,
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
ATTEMPT_WINDOW_SECONDS = 3600
KIT_WINDOW_SECONDS = 60
ROLE_HOME = {"door": "/door", "merch": "/merch", "lead": "/"}


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def csrf_field() -> Markup:
    return Markup(f'<input type="hidden" name="csrf_token" value="{csrf_token()}">')


SEEN_REFRESH_SECONDS = 60.0


def current_role() -> str | None:
    """The signed-in role, or None when signed out or idle longer than ``web.session_minutes``.

    ``seen`` is moved forward at most once a minute (a tenth of the timeout when that is shorter): a
    changed session is re-signed and re-sent as a cookie, which every request would otherwise pay for.
    So a session may end up to that minute earlier than the timeout, never later. Cached per request.
    """
    if "fieldkit_role" in g:
        return g.fieldkit_role
    role = session.get("role")
    if role:
        timeout = kit().config["web.session_minutes"] * 60
        now, seen = kit().clock.steady_time(), session.get("seen", 0)
        if now - seen > timeout:
            session.clear()
            role = None
        elif now - seen >= min(SEEN_REFRESH_SECONDS, timeout / 10):
            session["seen"] = now
    g.fieldkit_role = role or None
    return g.fieldkit_role


SIGNED_IN = "any"  # require_role(SIGNED_IN): every signed-in role (door, merch, lead), nobody signed out


def role_allows(role: str | None, needed: str) -> bool:
    return role is not None and (needed == SIGNED_IN or role == needed or role == "lead")


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
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not expected or not hmac.compare_digest(sent, expected):
        log.warning("event=csrf_rejected path=%s client=%s", request.path, request.remote_addr)
        if request.endpoint == "auth.login":  # a stale or foreign sign-in form: show a fresh one
            abort(make_response(render_template(
                "kit/login.html", error="The sign-in form expired. Enter your PIN again.", next="", wait=0), 400))
        if _wants_json():
            abort(make_response(jsonify(error="missing or wrong CSRF token; reload the page", code="csrf"), 400))
        abort(400, "The form expired. Go back, reload the page and try again.")


# --- throttling ---------------------------------------------------------------------------------

def _client() -> str:
    return request.remote_addr or "unknown"


def _now() -> float:
    """Wall-clock seconds; a test may set ``app.config["FIELDKIT_AUTH_CLOCK"]`` to a callable."""
    return current_app.config.get("FIELDKIT_AUTH_CLOCK", time.time)()


def wait_seconds(client: str) -> int:
    """How long this client must wait before its next PIN attempt (0 = may try now)."""
    return wait_and_reason(client)[0]


def wait_and_reason(client: str) -> tuple[int, str]:
    """How long before the next attempt may be made, and why: "address", "kit" ("" when it may be now)."""
    config, db, now = kit().config, kit().db, _now()
    rows = db.query("SELECT at FROM kit_auth_failures WHERE client = ? AND cleared = 0 AND at > ? ORDER BY at",
                    (client, now - ATTEMPT_WINDOW_SECONDS))
    wait = 0.0
    if len(rows) >= FREE_ATTEMPTS:
        delay = min(2 ** min(len(rows) - FREE_ATTEMPTS + 1, 30), config["web.login_max_wait_seconds"])
        wait = rows[-1]["at"] + delay - now
    if wait > 0:
        return int(wait + 0.999), "address"
    ceiling = config["web.login_failures_per_minute"]
    recent = db.query("SELECT at FROM kit_auth_failures WHERE at > ? ORDER BY at DESC LIMIT ?",
                      (now - KIT_WINDOW_SECONDS, max(1, ceiling)))
    if ceiling > 0 and len(recent) >= ceiling:  # the oldest of the last `ceiling` failures must leave the minute first
        return max(1, int(recent[-1]["at"] + KIT_WINDOW_SECONDS - now + 0.999)), "kit"
    return 0, ""


def record_failure(client: str) -> None:
    now = _now()
    with kit().db.transaction() as conn:
        conn.execute("INSERT INTO kit_auth_failures (client, at) VALUES (?, ?)", (client[:64], now))
        conn.execute("DELETE FROM kit_auth_failures WHERE at < ?", (now - ATTEMPT_WINDOW_SECONDS,))


def clear_failures(client: str) -> None:
    """After a right PIN: this address starts afresh, but its failures still count towards the kit's ceiling."""
    with kit().db.transaction() as conn:
        conn.execute("UPDATE kit_auth_failures SET cleared = 1 WHERE client = ?", (client,))


def lead_approved(body: dict) -> bool:
    """A lead's session, or the lead's PIN typed on a staff screen for one action (the door's reissue, the
    merch table's refund), throttled like sign-in: a wrong PIN counts as a failed sign-in."""
    if g.get("role") == "lead":
        return True
    pin = str(body.get("lead_pin") or "")
    if not pin or wait_seconds(_client()):
        return False
    if pin.isdigit() and len(pin) <= 12 and Secrets(kit().config.secrets_dir).role_for_pin(pin) == "lead":
        clear_failures(_client())
        return True
    record_failure(_client())
    return False


def _wait_words(wait: int, why: str) -> str:
    if why == "kit":
        return f"Too many wrong PINs on this kit in the last minute. Wait {wait} s and try again."
    return f"Too many wrong PINs. Wait {wait} s and try again."


def _login_answer(error: str | None, status: int, next_url: str, wait: int = 0):
    if _wants_json():
        body = {"error": error, "code": "throttled" if status == 429 else "login_failed"}
        response = make_response(jsonify(body), status)
    else:
        response = make_response(render_template("kit/login.html", error=error, next=next_url, wait=wait), status)
    if wait:
        response.headers["Retry-After"] = str(wait)
    return response


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_url = request.values.get("next") or ""
    if not next_url.startswith("/") or next_url.startswith("//"):
        next_url = ""
    if request.method != "POST":
        return render_template("kit/login.html", error=None, next=next_url, wait=wait_seconds(_client()))
    client = _client()
    wait, why = wait_and_reason(client)
    pin = (request.form.get("pin") or "").strip()
    if wait:
        log.warning("event=login_throttled client=%s wait=%s reason=%s", client, wait, why)
        return _login_answer(_wait_words(wait, why), 429, next_url, wait)
    if not pin.isdigit() or len(pin) > 12:
        return _login_answer("A PIN is 4 to 12 digits.", 400, next_url)
    try:
        role = Secrets(kit().config.secrets_dir).role_for_pin(pin)
    except SecretsError as e:
        log.error("event=login_unavailable client=%s reason=%r", client, str(e))
        return _login_answer(str(e), 503, next_url)
    if role:
        clear_failures(client)
        session.clear()
        session.permanent = True
        session.update(role=role, seen=kit().clock.steady_time())
        g.pop("fieldkit_role", None)
        csrf_token()
        log.info("event=login role=%s client=%s", role, client)
        return redirect(next_url or ROLE_HOME[role])
    record_failure(client)
    log.warning("event=login_failed client=%s", client)
    wait = wait_seconds(client)
    error = "Wrong PIN." + (f" Wait {wait} s and try again." if wait else "")
    return _login_answer(error, 401, next_url, wait)


@bp.route("/logout", methods=["POST"])
def logout():
    session.clear()
    g.pop("fieldkit_role", None)
    return redirect(url_for("auth.login"))
