"""The Flask app factory: core blueprints, then one blueprint per feature."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from flask import Flask, Request, jsonify, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import BadSignature, TimestampSigner
from werkzeug.exceptions import BadRequest

from kit.ledger_hold import LedgerHeld, hold_reason
from kit.secrets import Secrets
from kit.service import ServiceContext
from kit.update import hold
from kit.update import web as update_web
from kit.web import auth, dashboard, kiosk, openapi, sse
from kit.web.stream_roles import StreamRoles

log = logging.getLogger("fieldkit.web")
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
MAX_JSON_BYTES = 1024 * 1024  # no API call needs more; a bigger JSON body is refused unread


class KitRequest(Request):
    """A request whose JSON body is hostile-safe: too deep or too big reads as no body (or a 400)."""

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True):
        if (self.content_length or 0) > MAX_JSON_BYTES:
            if silent:
                return None
            raise BadRequest(f"the JSON body is larger than {MAX_JSON_BYTES // 1024} KiB")
        try:
            body = super().get_json(force=force, silent=silent, cache=cache)
        except RecursionError:  # json's parser gives up on nesting ~1000 deep with this, not ValueError
            body, problem = None, "the JSON body is nested too deeply"
        else:
            problem = "" if _all_text_encodable(body) else "the JSON body has text that is not valid Unicode"
        if not problem:
            return body
        log.warning("event=request_refused path=%s reason=%r", self.path, problem)
        if silent:
            return None
        raise BadRequest(problem)


def _all_text_encodable(body: object) -> bool:
    """False when a string (key or value) holds a lone surrogate ("\\ud800" in JSON), which SQLite,
    the ledger and the printer cannot store; iterative, so a deep body cannot exhaust the stack."""
    stack = [body]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


class CheckedCookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the signature check of a cookie value done once, not per request.

    A browser sends the same cookie until the session changes (once a minute at most, see auth), so the
    verified contents are kept per exact cookie value; the cookie's age is still checked on every request.
    """

    MAX_KEPT = 256  # cookies (signed-in screens) kept; the lot is dropped when full

    def __init__(self, steady_time: Callable[[], float] = time.time) -> None:
        self._verified: dict[str, tuple[dict, float]] = {}
        self.steady_time = steady_time

        class SteadySigner(TimestampSigner):  # cookies are stamped and aged on the kit's steady time
            def get_timestamp(self) -> int:
                return int(steady_time())

        self._signer = SteadySigner

    def get_expiration_time(self, app: Flask, session) -> None:
        """No ``Expires``: a date from the kit's clock, which may be days off until a lead sets it, reads as
        long past on a phone whose clock is right (and after a correction), and the browser drops the
        cookie. ``save_session`` sends ``Max-Age`` instead, which the browser counts on its own clock."""
        return None

    def save_session(self, app: Flask, session, response) -> None:
        super().save_session(app, session, response)
        if not session.permanent:
            return
        name, age = self.get_cookie_name(app), int(app.permanent_session_lifetime.total_seconds())
        cookies = response.headers.getlist("Set-Cookie")
        if any(c.startswith(f"{name}=") and "max-age" not in c.lower() for c in cookies):
            response.headers.remove("Set-Cookie")
            for c in cookies:
                response.headers.add("Set-Cookie", f"{c}; Max-Age={age}" if c.startswith(f"{name}=") and
                                     "max-age" not in c.lower() else c)

    def get_signing_serializer(self, app: Flask):
        serializer = super().get_signing_serializer(app)
        if serializer is not None:
            serializer.signer = self._signer
        return serializer

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        value = request.cookies.get(self.get_cookie_name(app))
        if not value:
            return super().open_session(app, request)
        max_age = app.permanent_session_lifetime.total_seconds()
        kept = self._verified.get(value)
        if kept is None:
            serializer = self.get_signing_serializer(app)
            if serializer is None:
                return None
            try:
                data, signed = serializer.loads(value, max_age=int(max_age), return_timestamp=True)
            except BadSignature:
                return self.session_class()
            if len(self._verified) >= self.MAX_KEPT:
                self._verified.clear()
            kept = self._verified[value] = (data, signed.timestamp())
        data, signed_at = kept
        if self.steady_time() - signed_at > max_age:  # as itsdangerous's max_age: an old cookie is no session
            self._verified.pop(value, None)
            return self.session_class()
        return self.session_class(dict(data))


def create_app(ctx: ServiceContext) -> Flask:
    here = Path(__file__).parent
    app = Flask("fieldkit", template_folder=str(here / "templates"), static_folder=str(here / "static"),
                static_url_path="/static")
    app.request_class = KitRequest
    app.session_interface = CheckedCookieSessions(ctx.clock.steady_time)
    app.secret_key = Secrets(ctx.config.secrets_dir).session_key()
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME=openapi.SESSION_COOKIE,
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=ctx.config["web.session_minutes"]),
        # The cookie goes out only when the session changed (auth moves "seen" once a minute), not on
        # every request: re-signing it is a large part of a small JSON request's cost.
        SESSION_REFRESH_EACH_REQUEST=False,
        MAX_CONTENT_LENGTH=MAX_UPLOAD_BYTES,
        JSON_SORT_KEYS=False,
    )
    app.extensions["fieldkit"] = ctx
    from kit.features import load_features

    features = load_features()
    if not hasattr(ctx.bus, "hub"):
        known = sse.known_stateful_topics([f.name for f in features] + ["appliance"])
        ctx.bus.hub = sse.EventHub(ctx.bus, ctx.config.kit_id, known)

    for bp in (auth.bp, sse.bp, openapi.bp, dashboard.bp, kiosk.bp, update_web.bp):
        app.register_blueprint(bp)
    nav = []
    for feature in features:
        if feature.blueprint:
            app.register_blueprint(feature.blueprint())
        if feature.nav:
            nav.append(feature.nav)
    try:
        from kit.appliance.web import blueprint as appliance_blueprint
    except ImportError:
        appliance_blueprint = None
    if appliance_blueprint:
        app.register_blueprint(appliance_blueprint())

    app.before_request(auth.check_csrf)
    # the request thread's SQLite connection goes back for the next request on any thread (kit/db.py)
    app.teardown_request(lambda _exc: ctx.db.release())
    app.extensions["fieldkit_stream_roles"] = StreamRoles.for_app(app)  # after every route is registered

    @app.context_processor
    def globals_for_templates():
        role = auth.current_role()
        return {
            "csrf_field": auth.csrf_field,
            "csrf_token": auth.csrf_token,
            "role": role,
            "kit_id": ctx.config.kit_id,
            "event_name": ctx.config["kit.event"] or ctx.config.site,
            "nav": [n for n in nav if auth.role_allows(role, n[2])],
            "clock_synced": ctx.clock.is_synced(),
            "ledger_hold": hold_reason(ctx.db.conn),
            "update_hold": hold.read_hold(ctx.config.data_dir),  # a release on trial: "Updating — back in a minute"
        }

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'",
        )
        return response

    @app.errorhandler(404)
    def not_found(e):
        if request.path.startswith("/api/"):
            return jsonify(error="no such API route", code="not_found"), 404
        return e

    @app.errorhandler(405)
    def not_allowed(e):
        if request.path.startswith("/api/"):
            return jsonify(error=f"{request.method} is not allowed here", code="method_not_allowed"), 405
        return e

    @app.errorhandler(413)
    def too_large(e):
        return jsonify(error=f"the upload is larger than {MAX_UPLOAD_BYTES // 1024 // 1024} MB"), 413

    @app.errorhandler(OverflowError)
    def number_too_large(e):  # e.g. a 30-digit integer in a JSON body reaching SQLite's 64-bit INTEGER
        log.warning("event=request_refused path=%s reason=%r", request.path, f"a number is too large: {e}")
        if request.path.startswith("/api/"):
            return jsonify(error="a number in the request is too large", code="bad_request"), 400
        return "A number in the request is too large.", 400

    @app.errorhandler(LedgerHeld)
    def ledger_held(e):  # a spare kit that must be restored first (kit/ledger.py, sync/mirror.py)
        log.warning("event=request_refused path=%s reason=ledger_held", request.path)
        if request.path.startswith("/api/"):
            return jsonify(error=str(e), code="ledger_held"), 423
        return str(e), 423

    @app.errorhandler(hold.UpdateInProgress)
    def updating(e):  # a sale or a scan while a new release is on trial (kit/update/hold.py): nothing was recorded
        log.info("event=request_held path=%s reason=update_trial", request.path)
        if request.path.startswith("/api/"):
            return jsonify(error=hold.MESSAGE, code="updating"), 503
        return hold.MESSAGE, 503

    @app.errorhandler(500)
    def server_error(e):
        log.error("event=server_error path=%s", request.path)
        if request.path.startswith("/api/"):
            return jsonify(error="the kit hit an internal error; it was logged", code="internal"), 500
        return "The kit hit an internal error; it was logged.", 500

    return app
