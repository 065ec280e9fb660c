"""The kiosk terminal: the browser on the kit's own screen, signed in for the whole event.

The browser of fieldkit-kiosk.service reaches the kit over loopback and carries a device cookie
(``fieldkit_kiosk``, a random token; only its hash is stored in ``kit_kiosk_terminals``). A PIN entered
on that screen binds the terminal to the role it signed in as: from then on requests from that browser
(over loopback only, so a copied cookie is worth nothing from a phone) have that role without the idle
timeout of ``web.session_minutes``, until a lead signs the screen out from the dashboard or someone
taps "Sign out" on it. While the lead's first PIN is unchanged the kiosk shows the setup slip instead,
which only a loopback request may see.

Pages the terminal opens get a small stylesheet and script (kit/web/static/kiosk.css, kiosk.js): no
text selection or pinch zoom, and a service worker that answers a navigation the kit cannot answer
(the web process restarting) with the local "starting…" page instead of a browser error.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from flask import (
    Blueprint,
    abort,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)

from kit.web.auth import ROLE_HOME, csrf_token, current_role, require_role, role_allows
from kit.web.context import kit

log = logging.getLogger("fieldkit.web.kiosk")
bp = Blueprint("kiosk", __name__)

COOKIE = "fieldkit_kiosk"
COOKIE_MAX_AGE = 400 * 24 * 3600  # the longest a browser keeps a cookie; the terminal row decides, not this
SEEN_WRITE_SECONDS = 60.0
STATIC = Path(__file__).parent / "static"
PAGE_ROLE = {"/door": "door", "/merch": "merch", "/": "lead"}
INJECT = {"/static/kiosk.css": '<link rel="stylesheet" href="/static/kiosk.css">',
          "/static/kiosk.js": '<script src="/static/kiosk.js" defer></script>'}


@dataclass(frozen=True)
class Terminal:
    id: int
    role: str | None
    csrf: str | None
    last_seen: float


def is_loopback() -> bool:
    """A request from a browser on the kit itself: loopback peer, loopback Host (no DNS rebinding), no proxy."""
    try:
        peer = ipaddress.ip_address((request.remote_addr or "").split("%")[0])
    except ValueError:
        return False
    if not peer.is_loopback or "X-Forwarded-For" in request.headers or "Forwarded" in request.headers:
        return False
    host = request.host
    host = host[1:].split("]")[0] if host.startswith("[") else host.rsplit(":", 1)[0]
    return host in ("127.0.0.1", "localhost", "::1")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _lookup(token: str) -> Terminal | None:
    row = kit().db.query_one(
        "SELECT id, role, csrf, last_seen FROM kit_kiosk_terminals WHERE token_hash = ?",
        (_hash(token),))
    return Terminal(row["id"], row["role"], row["csrf"], row["last_seen"]) if row else None


def kiosk_page() -> str:
    return {"/dashboard": "/"}.get(kit().config["kiosk.page"], kit().config["kiosk.page"])


def first_lead_pin_unchanged() -> bool:
    from kit.secrets import Secrets

    return Secrets(kit().config.secrets_dir).initial_lead_pin() is not None


# --- the terminal's role on every request -------------------------------------------------------

@bp.before_app_request
def recognise_terminal():
    """Give a signed-in terminal its role before any view (auth.current_role reads ``g.fieldkit_role``)."""
    token = request.cookies.get(COOKIE)
    if not token or not is_loopback():
        return
    terminal = _lookup(token)
    if terminal is None:
        return
    g.kiosk_terminal = terminal
    if request.endpoint == "auth.logout":  # "Sign out" tapped on the screen signs the terminal out
        _sign_out(terminal.id, "the screen")
        return
    if terminal.role is None:
        if session.get("kiosk") == terminal.id:  # signed out by a lead: the browser's own session goes too
            session.clear()
            g.fieldkit_role = None
        return
    if session.get("role") and session.get("kiosk") != terminal.id:
        return  # someone just signed in with another PIN on this screen: that ordinary session applies
    g.fieldkit_role = terminal.role
    # The page may have been open for longer than the session cookie lives: keep its form token valid.
    if terminal.csrf and session.get("csrf") != terminal.csrf:
        session["csrf"] = terminal.csrf
    if session.get("kiosk") != terminal.id:  # only on change: a changed session re-sends its cookie
        session["kiosk"] = terminal.id
    now = time.time()
    if now - terminal.last_seen >= SEEN_WRITE_SECONDS:
        with kit().db.transaction() as conn:
            conn.execute("UPDATE kit_kiosk_terminals SET last_seen = ? WHERE id = ?", (now, terminal.id))


@bp.after_app_request
def after_terminal_request(response):
    terminal = g.get("kiosk_terminal")
    if terminal is None:
        return response
    if request.endpoint == "auth.login" and request.method == "POST" and response.status_code == 302 \
            and session.get("role"):
        _bind(terminal, session["role"])
    if response.mimetype == "text/html" and not response.direct_passthrough and not response.is_streamed:
        body = response.get_data(as_text=True)
        missing = "".join(tag for path, tag in INJECT.items() if path not in body)
        if missing and "</head>" in body:
            response.set_data(body.replace("</head>", missing + "</head>", 1))
    return response


def _bind(terminal: Terminal, role: str) -> None:
    now, csrf = time.time(), csrf_token()
    with kit().db.transaction() as conn:
        conn.execute("UPDATE kit_kiosk_terminals SET role = ?, csrf = ?, signed_in_at = ?, last_seen = ? WHERE id = ?",
                     (role, csrf, now, now, terminal.id))
    session["kiosk"] = terminal.id
    log.info("event=kiosk_signed_in terminal=%s role=%s", terminal.id, role)


def _sign_out(terminal_id: int, by: str) -> bool:
    """The terminal stays known (its next PIN signs it in again), without a role."""
    with kit().db.transaction() as conn:
        done = conn.execute("UPDATE kit_kiosk_terminals SET role = NULL, csrf = NULL, signed_out_at = ?, signed_out_by = ? "
                            "WHERE id = ? AND role IS NOT NULL", (time.time(), by, terminal_id)).rowcount
    if done:
        log.info("event=kiosk_signed_out terminal=%s by=%r", terminal_id, by)
    return bool(done)


def _new_terminal() -> tuple[str, int]:
    token, now = secrets.token_urlsafe(32), time.time()
    with kit().db.transaction() as conn:
        cur = conn.execute("INSERT INTO kit_kiosk_terminals (token_hash, created_at, last_seen) VALUES (?, ?, ?)",
                           (_hash(token), now, now))
    log.info("event=kiosk_terminal_new terminal=%s", cur.lastrowid)
    return token, cur.lastrowid


# --- routes --------------------------------------------------------------------------------------

@bp.get("/kiosk")
def entry():
    """Where the kiosk's browser starts: the slip, the PIN pad, or the kiosk's page."""
    if not is_loopback():
        abort(404)
    terminal = g.get("kiosk_terminal")
    token = None
    if terminal is None:
        token, terminal_id = _new_terminal()
        terminal = Terminal(terminal_id, None, None, time.time())
    if first_lead_pin_unchanged():
        response = redirect(url_for("kiosk.slip"))
    elif current_role() is None:
        response = redirect(url_for("auth.login", next="/kiosk"))
    else:
        role, page = current_role(), kiosk_page()
        if role_allows(role, PAGE_ROLE[page]):
            response = redirect(page)
        else:
            response = redirect(ROLE_HOME.get(role, "/login"))
    if token:
        response.set_cookie(COOKIE, token, max_age=COOKIE_MAX_AGE, httponly=True, samesite="Lax", path="/")
    return response


@bp.get("/kiosk/slip")
def slip():
    """The setup slip on the kit's own screen: loopback only, it shows the lead's first PIN."""
    if not is_loopback():
        abort(404)
    if not first_lead_pin_unchanged():
        return redirect(url_for("kiosk.entry"))
    from kit.appliance.boot import hotspot_credentials
    from kit.appliance.slip import page_parts, setup_info
    from kit.config import ConfigError

    config = kit().config
    try:
        ssid, password = hotspot_credentials(config, create=False)
    except ConfigError:
        ssid, password = "", ""
    info = setup_info(config, ssid, password)
    return render_template("kit/kiosk_slip.html", info=info, **page_parts(info))


@bp.get("/kiosk/state")
def state():
    """What kiosk.js polls: is the kit there, and is this screen still signed in."""
    terminal = g.get("kiosk_terminal")
    return jsonify(kiosk=terminal is not None, signed_in=current_role() is not None, slip=first_lead_pin_unchanged())


@bp.get("/kiosk/sw.js")
def service_worker():
    response = send_file(STATIC / "kiosk-sw.js", mimetype="text/javascript", max_age=0)
    response.headers["Service-Worker-Allowed"] = "/"  # it answers navigations anywhere on the kit
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.post("/kiosk/terminals/<int:terminal_id>/sign-out")
@require_role("lead")
def sign_out(terminal_id: int):
    if not _sign_out(terminal_id, "a lead"):
        return jsonify(error="no such signed-in screen", code="not_found"), 404
    if request.accept_mimetypes.best == "application/json":
        return jsonify(signed_out=terminal_id)
    return redirect("/#kiosk-terminals")


@bp.app_context_processor
def terminals_for_templates():
    return {"kiosk_terminals": signed_in_terminals}


def signed_in_terminals() -> list[dict]:
    rows = kit().db.query("SELECT id, role, signed_in_at, last_seen FROM kit_kiosk_terminals "
                          "WHERE role IS NOT NULL ORDER BY id")
    tz = kit().config.tz
    return [{"id": r["id"], "role": r["role"], "signed_in": _local(r["signed_in_at"], tz),
             "seen": _local(r["last_seen"], tz)} for r in rows]


def _local(epoch: float | None, tz) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(epoch or 0, tz).strftime("%a %H:%M")
