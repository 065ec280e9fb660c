"""The organiser's report pages at HQ: HTML with charts, CSV export, JSON. Admin token via HTTP basic auth."""

from __future__ import annotations

import base64
from collections.abc import Callable
from urllib.parse import urlencode

from flask import Flask, Response, jsonify, request
from sqlalchemy.engine import Engine

from sync.hq import store
from sync.hq.reconcile import build_report, parse_bound
from sync.hq.render import render_csv, render_html


def _admin(engine: Engine) -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:6].lower() == "basic ":
        try:
            _, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return store.authenticate_admin(engine, password)
    if header[:7].lower() == "bearer ":
        return store.authenticate_admin(engine, header[7:].strip())
    return None


def register_report_routes(app: Flask, engine: Engine, card_match_minutes: int = 10, tz: str = "UTC",
                           guarded: Callable | None = None) -> None:
    """``guarded`` runs the admin check under HQ's bad-token throttle (see sync/hq/throttle.py)."""
    def challenge() -> Response:
        return Response("Sign in with any user name and an admin token (`fieldkit hq admins add NAME`).", 401,
                        {"WWW-Authenticate": 'Basic realm="Field Kit HQ", charset="UTF-8"'})

    def check() -> str:
        name = _admin(engine)
        if not name:
            raise store.HQError("an admin token is needed", 401, "unauthorized")
        return name

    def admin() -> str | None:
        """The organiser's name; None when the request carries no (right) token; HQError 429 when throttled."""
        if not request.headers.get("Authorization"):
            return None  # a browser's first request before it shows the sign-in prompt: not a guess
        try:
            return guarded(check) if guarded else check()
        except store.HQError as e:
            if e.status == 401:
                return None
            raise

    def report():
        site = request.args.get("site") or None
        if site is not None and not store.KIT_ID_RE.match(site):
            raise store.HQError("site may only use letters, digits, - and _")
        try:
            since, until = parse_bound(request.args.get("from"), tz), parse_bound(request.args.get("to"), tz)
        except ValueError as e:
            raise store.HQError(str(e)) from None
        return build_report(engine, site=site, card_match_minutes=card_match_minutes, tz=tz, since=since, until=until)

    @app.get("/report")
    def report_page():
        if not admin():
            return challenge()
        args = {k: request.args[k] for k in ("site", "from", "to") if request.args.get(k)}
        query = "?" + urlencode(args) if args else ""
        return Response(render_html(report(), query), mimetype="text/html")

    @app.get("/report.csv")
    def report_csv():
        if not admin():
            return challenge()
        r = report()
        section = request.args.get("section")
        if section and section not in {s.key for s in r.sections}:
            raise store.HQError(f"no report section {section!r}", 404, "not_found")
        name = f"reconciliation-{r.site or 'all'}{'-' + section if section else ''}.csv"
        return Response(render_csv(r, section), mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.get("/api/v1/report")
    def report_json():
        if not admin():
            return jsonify(error="an admin token is needed", code="unauthorized"), 401
        return jsonify(report().as_dict())
