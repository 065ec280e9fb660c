"""The power page (battery, solar, time left, chart) and its JSON API."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from flask import Blueprint, jsonify, render_template, request

from kit.event_codec import unpack
from kit.web.auth import require_role
from kit.web.context import kit
from kit.web.openapi import api_doc
from power.history import query
from power.live import live_view

HERE = Path(__file__).parent
MAX_HISTORY_DAYS = 31


def current_state() -> dict:
    ctx = kit()
    latest = ctx.bus.hub.latest()
    return live_view(latest.get("power/state"), latest.get("power/health"), ctx.clock.time(),
                     ctx.config["power.stale_seconds"], ctx.config["power.publish_seconds"])


def recent_events(limit: int = 8) -> list[dict]:
    """The last low-power warnings and shutdowns from the ledger, newest first, in the kit's time zone."""
    ctx = kit()
    rows = ctx.db.query("SELECT type, payload, wall_time FROM events WHERE type LIKE 'power.%' "
                        "ORDER BY seq DESC LIMIT ?", (limit,))
    out = []
    for r in rows:
        payload = json.loads(unpack(r["payload"]))
        when = datetime.fromisoformat(r["wall_time"]).astimezone(ctx.config.tz)
        level = payload.get("level", "")
        what = {"power.shutdown": "shut down", "power.shutdown_failed": "shutdown command failed",
                "power.shutdown_simulated": f"would run: {payload.get('command', '')} (simulation)"}.get(
            r["type"], {"warning": "battery low", "critical": "battery critical", "ok": "battery recovered"}.get(level, level))
        out.append({"when": when.strftime("%a %H:%M:%S"), "what": what, "soc": payload.get("soc_percent"),
                    "voltage": payload.get("voltage")})
    return out


def parse_since(raw: str | None, now: float) -> float:
    """``since`` as unix seconds, an ISO 8601 time, or hours back as ``-6h``; default the last 24 h."""
    if raw is None or raw == "":
        return now - 86400
    raw = raw.strip()
    try:
        if raw.startswith("-") and raw.endswith("h"):
            return now - float(raw[1:-1]) * 3600
        return float(raw)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"since={raw[:40]!r} is not unix seconds, an ISO 8601 time or hours back like -6h") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=kit().config.tz)
    return when.timestamp()


bp = Blueprint("power", __name__, template_folder=str(HERE / "templates"), static_folder=str(HERE / "static"),
               static_url_path="/power/static")


@bp.get("/power")
@require_role("lead")
def page():
    return render_template("power/power.html", state=current_state(), events=recent_events())


@bp.get("/api/v1/power/state")
@require_role("lead")
@api_doc("Battery, solar, load and time left; values are null whenever they are not live",
         responses={200: "the state; `live` false (with a `reason`) when the power service is down or stale"})
def state():
    return jsonify(current_state())


@bp.get("/api/v1/power/history")
@require_role("lead")
@api_doc("Battery and solar samples since a time (10 s resolution for the last day, 5 min before)",
         query={"since": {"type": "string", "description": "unix seconds, ISO 8601, or hours back (-6h)"}},
         responses={200: "samples", 400: "since is not a time"})
def history():
    ctx = kit()
    now = ctx.clock.time()
    try:
        since = parse_since(request.args.get("since"), now)
    except ValueError as e:
        return jsonify(error=str(e), code="bad_since"), 400
    if since != since or since > now + 60:  # NaN or the future
        return jsonify(error="since must be a time in the past", code="bad_since"), 400
    since = max(since, now - MAX_HISTORY_DAYS * 86400)
    return jsonify(query(ctx.db, since, now, ctx.config["power.history_fine_hours"] * 3600))


def blueprint() -> Blueprint:
    """The feature contract (kit/features.py): routes are module-level, registered once per app."""
    return bp
