"""The lead's sync page: backlog, last success, last error, parked records, documents, "Sync now"."""

from __future__ import annotations

import uuid
from pathlib import Path

from flask import Blueprint, Response, jsonify, render_template

from kit import topics
from kit.config import ConfigError, load_config
from kit.web.auth import require_role
from kit.web.context import kit
from kit.web.openapi import api_doc


def _state() -> dict:
    from sync.agent import SyncAgent

    ctx = kit()
    try:  # `fieldkit sync join` may have run since the web server started: read the settings afresh
        config = load_config()
    except ConfigError:
        config = ctx.config
    state = SyncAgent(config, ctx.db).state()
    live = ctx.bus.hub.latest().get("sync/state") or {}
    # The service knows what only it can know (online, syncing, progress); the database knows the rest.
    for key in ("online", "syncing", "progress"):
        if key in live:
            state[key] = live[key]
    state["service"] = (ctx.bus.hub.latest().get("sync/health") or {}).get("state", "unknown")
    from sync.mirror import mirror_state

    state["mirror_detail"] = mirror_state(ctx.db)
    return state


bp = Blueprint("sync", __name__, template_folder=str(Path(__file__).parent / "templates"))


@bp.get("/sync")
@require_role("lead")
def page():
    return render_template("sync/sync.html", state=_state())


@bp.get("/sync/site")
@require_role("lead")
def site():
    from sync.hq.render import cell
    from sync.site_report import SiteReportError, site_report_in_child

    try:
        report = site_report_in_child(kit().config)
    except SiteReportError as e:
        return render_template("sync/site.html", report=None, error=str(e), cell=cell), 503
    return render_template("sync/site.html", report=report, cell=cell)


@bp.get("/sync/site.csv")
@require_role("lead")
def site_csv():
    from sync.hq.render import render_csv
    from sync.site_report import SiteReportError, site_report_in_child

    try:
        report = site_report_in_child(kit().config)
    except SiteReportError as e:
        return jsonify(error=str(e), code="site_report_failed"), 503
    if report is None:
        return jsonify(error="this kit keeps no mirror of the site", code="not_a_mirror"), 404
    return Response(render_csv(report), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=site-reconciliation.csv"})


@bp.get("/api/v1/sync/state")
@require_role("lead")
@api_doc("Sync backlog, cursor, last success and error, parked records, documents from HQ")
def state():
    return jsonify(_state())


@bp.post("/api/v1/sync/now")
@require_role("lead")
@api_doc("Ask the sync service to reach HQ now; progress follows on sync/state",
         responses={202: "asked", 409: "the kit is not joined to an HQ", 503: "the sync service is not running"})
def now():
    ctx = kit()
    current = _state()
    if not current["configured"]:
        return jsonify(error="This kit is not joined to an HQ: run `fieldkit sync join URL TOKEN`.",
                       code="not_joined"), 409
    if current["service"] != "ok":
        return jsonify(error="The sync service is not running; it uploads once it is started.",
                       code="service_down"), 503
    request_id = uuid.uuid4().hex
    ctx.bus.publish(topics.cmd(ctx.config.kit_id, *topics.SYNC_NOW), {"id": request_id, "by": "dashboard"}, qos=1)
    return jsonify(requested=True, id=request_id, backlog=current["backlog"]), 202


def blueprint() -> Blueprint:
    """The feature contract (kit/features.py): routes are module-level, registered once per app."""
    return bp
