"""HQ's fleet routes: kits post their status, download offered bundles in ranges; organisers see the fleet.

``POST /api/v1/kits/<kit>/status`` (kit token): the kit's live state; answered with the bundle HQ
offers it, if any. ``GET /api/v1/kits/<kit>/bundles/<version>/<arch>`` (kit token): the bundle, whole
or one byte range (206 with Content-Range; 416 for a range HQ cannot serve), only to a kit whose site
is in an active rollout of that version. ``GET /fleet`` and ``GET /api/v1/fleet`` (admin token).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from pathlib import Path

from flask import Flask, Response, jsonify, request
from sqlalchemy.engine import Engine

from sync.hq import bundles, fleet, store
from sync.hq.app import read_body
from sync.hq.store import HQError

log = logging.getLogger("fieldkit.hq.fleet")


def register_fleet_routes(
    app: Flask, engine: Engine, bundle_dir: Path | None, kit_auth: Callable[[str], dict], guarded: Callable
) -> None:
    """``kit_auth``: the kit token check; ``guarded``: HQ's bad-token throttle around the admin check."""
    from sync.hq.report_web import _admin

    def check() -> str:
        name = _admin(engine)
        if not name:
            raise HQError("an admin token is needed", 401, "unauthorized")
        return name

    def admin() -> str | None:
        if not request.headers.get("Authorization"):
            return None  # a browser's first request, before it shows the sign-in prompt
        try:
            return guarded(check)
        except HQError as e:
            if e.status == 401:
                return None
            raise

    def challenge() -> Response:
        return Response(
            "Sign in with any user name and an admin token (`fieldkit hq admins add NAME`).",
            401,
            {"WWW-Authenticate": 'Basic realm="Field Kit HQ", charset="UTF-8"'},
        )

    @app.post("/api/v1/kits/<kit>/status")
    def post_status(kit: str):
        row = kit_auth(kit)
        try:
            status = fleet.parse_status(read_body(fleet.MAX_STATUS_BYTES), store.now_utc())
        except fleet.StatusRefused as e:
            raise HQError(f"status refused: {e}", 400, "bad_status") from None
        fleet.store_status(engine, kit, status)
        offer = (
            bundles.offer_for(engine, kit, row["site"], status["arch"], status["version"])
            if bundle_dir
            else None
        )
        return jsonify(ok=True, offer=offer)

    @app.get("/api/v1/kits/<kit>/bundles/<version>/<arch>")
    def get_bundle(kit: str, version: str, arch: str):
        row = kit_auth(kit)
        if bundle_dir is None or not fleet.VERSION_RE.match(version) or not fleet.ARCH_RE.match(arch):
            raise HQError("no such bundle for this kit", 404, "not_found")
        found = bundles.offered(engine, row["site"], arch, version)
        if not found:  # not in a rollout for this kit's site (or stopped): the same answer as no bundle
            raise HQError("no such bundle for this kit", 404, "not_found")
        meta = found[0]
        path = bundles.bundle_path(bundle_dir, meta)
        size = meta["size"]
        span = bundles.parse_range(request.headers.get("Range"), size)
        headers = {
            "Accept-Ranges": "bytes",
            "X-Bundle-Sha256": meta["sha256"],
            "X-Bundle-Version": meta["version"],
        }
        if span is None:
            first, last, status = 0, size - 1, 200
        else:
            (first, last), status = span, 206
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        headers["Content-Length"] = str(last - first + 1)
        log.info(
            "event=bundle_served kit=%s version=%s arch=%s first=%d last=%d", kit, version, arch, first, last
        )
        return Response(
            bundles.stream(path, first, last),
            status,
            headers=headers,
            mimetype="application/octet-stream",
            direct_passthrough=True,
        )

    @app.get("/api/v1/fleet")
    def fleet_json():
        if not admin():
            return jsonify(error="an admin token is needed", code="unauthorized"), 401
        return jsonify(kits=fleet.fleet(engine), rollouts=_rollouts(engine))

    @app.get("/fleet")
    def fleet_page():
        if not admin():
            return challenge()
        return Response(render_page(fleet.fleet(engine), _rollouts(engine)), mimetype="text/html")


def _rollouts(engine: Engine) -> list[dict]:
    return [
        {
            **r,
            "started_at": r["started_at"].isoformat(timespec="seconds"),
            "stopped_at": r["stopped_at"].isoformat(timespec="seconds") if r["stopped_at"] else None,
        }
        for r in bundles.list_rollouts(engine)
    ]


COLUMNS = ("Kit", "Site", "Version", "Last seen", "Last update", "Backlog", "Lag", "Battery", "Clock")


def cells(k: dict) -> list[tuple[str, bool]]:
    """The row's cells and whether each is a problem (shown red)."""
    update = k["update"]
    return [
        (k["kit"] + (" (disabled)" if k["disabled"] else ""), k["disabled"]),
        (k["site"], False),
        (k["version"] or "?", False),
        (fleet.ago(k["seen_seconds_ago"]), k["seen_seconds_ago"] is None or k["seen_seconds_ago"] > 3600),
        (update["text"] if update else "none", bool(update and "roll" in update["text"])),
        ("?" if k["backlog"] is None else f"{k['backlog']} events", bool(k["backlog"])),
        (
            "?" if k["lag_seconds"] is None else fleet.ago(k["lag_seconds"]).replace(" ago", ""),
            bool(k["lag_seconds"]),
        ),
        (
            "?" if k["battery_percent"] is None else f"{k['battery_percent']:.0f} %",
            k["battery_percent"] is not None and k["battery_percent"] < 20,
        ),
        (fleet.clock_text(k), k["clock_trusted"] is False),
    ]


CSS = """
body{font:16px/1.4 system-ui,sans-serif;margin:0;padding:12px;color:#111;background:#fafafa}
h1{font-size:1.4em;margin:0 0 8px}h2{font-size:1.1em;margin:16px 0 6px}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #ddd;vertical-align:top}
th{background:#eee;font-weight:600}.bad{color:#a00000;font-weight:600}
@media (min-width:701px){td:first-child{white-space:nowrap}}
p.sum{margin:0 0 10px}
@media (max-width:700px){
 thead{display:none}table,tbody,tr,td{display:block;width:auto}
 tr{border:1px solid #ccc;border-radius:6px;margin:0 0 10px;padding:4px 8px;background:#fff}
 td{border:0;padding:3px 0;display:flex;gap:8px}
 td::before{content:attr(data-label);flex:0 0 7.5em;color:#555}
}
"""


def render_page(kits: list[dict], rollouts: list[dict]) -> str:
    e = html.escape
    rows = []
    for k in kits:
        tds = "".join(
            f'<td data-label="{e(c)}"{" class=bad" if bad else ""}>{e(text)}</td>'
            for c, (text, bad) in zip(COLUMNS, cells(k), strict=True)
        )
        rows.append(f'<tr id="kit-{e(k["kit"])}">{tds}</tr>')
    seen = sum(1 for k in kits if k["seen_seconds_ago"] is not None)
    versions = sorted({k["version"] for k in kits if k["version"]})
    roll = (
        "".join(
            f"<li>{e(r['version'])} to site {e(r['site'])}: "
            f"{'stopped ' + e(r['stopped_at']) if r['stopped_at'] else 'offered since ' + e(r['started_at'])}</li>"
            for r in rollouts
        )
        or "<li>none</li>"
    )
    head = "".join(f"<th>{e(c)}</th>" for c in COLUMNS)
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
        f'content="width=device-width,initial-scale=1"><title>Fleet — Field Kit HQ</title><style>{CSS}</style>'
        f'</head><body><main><h1>Fleet</h1><p class="sum" id="fleet-summary">{len(kits)} kits, {seen} reported; '
        f"versions: {e(', '.join(versions) or 'none reported')}</p>"
        f'<table id="fleet"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
        f'<h2>Rollouts</h2><ul id="rollouts">{roll}</ul></main></body></html>'
    )
