"""The lead's dashboard: every service's health live, the clock, documents, links to each feature."""

from __future__ import annotations

import json
import logging
import secrets
import time
from pathlib import Path

from flask import Blueprint, jsonify, redirect, render_template, request

from kit import topics
from kit.documents import DocumentError, current_documents, document_kinds, import_document
from kit.startid import is_running
from kit.web.auth import current_role, require_role
from kit.web.context import json_object, kit
from kit.web.openapi import api_doc

log = logging.getLogger("fieldkit.web.dashboard")
bp = Blueprint("dashboard", __name__)
UPLOAD_TTL_SECONDS = 3600


def service_health() -> dict[str, dict]:
    """Latest health per service, from the bus (services not heard from are 'unknown')."""
    ctx = kit()
    latest = ctx.bus.hub.latest()
    out = {}
    from kit.runners import service_names

    status = latest.get("status") if isinstance(latest.get("status"), dict) else {}
    # The status service sets aside other kits' and earlier runs' retained health (kit/status.py).
    trusted = status.get("services") if is_running(status.get("start_id")) else None
    for name in service_names():
        out[name] = latest.get(f"{name}/health", {"state": "unknown"})
        if isinstance(trusted, dict) and trusted.get(name, out[name].get("state")) != out[name].get("state"):
            out[name] = {"state": str(trusted[name])}
    return out


def status_reasons() -> list[str]:
    """What the status service says is wrong with the kit as a whole (e.g. another kit with our id)."""
    status = kit().bus.hub.latest().get("status")
    reasons = status.get("reasons") if isinstance(status, dict) else None
    return [str(r)[:300] for r in reasons[:3]] if isinstance(reasons, list) else []


@bp.route("/")
def home():
    role = current_role()
    if role is None:
        return redirect("/login")
    if role != "lead":
        from kit.web.auth import ROLE_HOME

        return redirect(ROLE_HOME[role])
    return dashboard()


def readiness(services: dict[str, dict], documents: list[dict], clock: dict) -> list[str]:
    """What stands between this kit and 'ready for <event>' (JOURNEYS step 2): empty when ready."""
    problems = []
    for name, h in services.items():
        if h.get("state") != "ok":
            reason = h.get("reason") or ("not running" if h.get("state") in ("unknown", "offline") else h.get("state"))
            problems.append(f"{name}: {reason}")
    have = {d["kind"] for d in documents}
    if "checkin.attendees" not in have and "checkin.keys" not in have:
        problems.append("no attendee list (or ticket keys) yet: upload it below or sync with HQ")
    if "pos.catalogue" not in have:
        problems.append("no catalogue yet: upload it below or sync with HQ")
    if not clock["synced"]:
        problems.append("the clock is not confirmed: set it from this phone")
    return problems


@require_role("lead")
def dashboard():
    ctx = kit()
    services, documents, clock = service_health(), current_documents(ctx.db), ctx.clock.status().as_dict()
    clock["local"] = ctx.clock.now().astimezone(ctx.config.tz).strftime("%a %d %b %H:%M")
    # The services' part of "ready" is redrawn live by the page from the stream; the rest only changes on reload.
    return render_template("kit/dashboard.html", services=services, clock=clock, documents=documents,
                           problems=readiness(services, documents, clock) + status_reasons(),
                           other_problems=readiness({}, documents, clock) + status_reasons(),
                           event=ctx.config["kit.event"] or ctx.config.site, timezone=ctx.config["kit.timezone"],
                           privacy=privacy_status())


def privacy_status() -> dict:
    from kit.features import load_features
    from kit.privacy import hooks_from, status

    ctx = kit()
    return status(ctx.db, ctx.config, hooks_from(load_features()))


@bp.route("/api/v1/privacy")
@require_role("lead")
@api_doc("What personal data the kit holds, where, and when it will be erased")
def privacy():
    return jsonify(privacy_status())


@bp.route("/api/v1/health")
@api_doc("Is the kit's web server up; health of every service", responses={200: "the web server answers"})
def health():
    ctx = kit()
    services = service_health()
    status = ctx.bus.hub.latest().get("status", {}).get("state", "unknown")
    return jsonify(ok=True, kit=ctx.config.kit_id, site=ctx.config.site, status=status,
                   broker=ctx.bus.is_connected, services={k: v.get("state") for k, v in services.items()})


@bp.route("/api/v1/status")
@require_role("lead")
@api_doc("The kit as the dashboard shows it: services, clock, documents")
def status():
    ctx = kit()
    return jsonify(kit=ctx.config.kit_id, services=service_health(), clock=ctx.clock.status().as_dict(),
                   documents=current_documents(ctx.db))


@bp.route("/api/v1/clock", methods=["GET"])
@require_role("door")
@api_doc("Whether the kit's clock can be trusted")
def clock_get():
    return jsonify(kit().clock.status().as_dict())


@bp.route("/api/v1/clock", methods=["POST"])
@require_role("lead")
@api_doc("Set the kit's clock from the lead's phone", request={
    "type": "object", "required": ["now_ms"], "properties": {"now_ms": {"type": "integer", "description": "phone time, ms since 1970"}}},
    responses={200: "clock set", 400: "not a plausible time"})
def clock_set():
    body = json_object()
    if body is None:
        return jsonify(error='send a JSON object: {"now_ms": <ms since 1970>}', code="bad_body"), 400
    now_ms = body.get("now_ms")
    if not isinstance(now_ms, int) or isinstance(now_ms, bool):
        return jsonify(error="now_ms must be an integer (milliseconds since 1970)"), 400
    from kit.clock import EARLIEST_PLAUSIBLE

    if not EARLIEST_PLAUSIBLE * 1000 <= now_ms < (EARLIEST_PLAUSIBLE + 50 * 365 * 86400) * 1000:  # ints: no overflow
        return jsonify(error="that time is not plausible; check the phone's clock"), 400
    try:
        method = kit().clock.set_time(now_ms / 1000, who="lead (browser)")
    except Exception as e:  # timedated refused: say so, keep the old clock
        log.warning("event=clock_set_failed error=%r", e)
        return jsonify(error=f"the system refused to set the clock: {e}"), 500
    return jsonify(method=method, clock=kit().clock.status().as_dict())


# --- reference documents: upload, preview, import ------------------------------------------------

def _uploads_dir() -> Path:
    d = kit().config.data_dir / "uploads"
    d.mkdir(parents=True, exist_ok=True)
    for old in d.iterdir():  # abandoned previews
        if old.stat().st_mtime < time.time() - UPLOAD_TTL_SECONDS:
            old.unlink(missing_ok=True)
    return d


@bp.route("/documents")
@require_role("lead")
def documents_page():
    return render_template("kit/documents.html", kinds=document_kinds(), documents=current_documents(kit().db))


@bp.route("/api/v1/documents/preview", methods=["POST"])
@require_role("lead")
@api_doc("Upload a document and see what importing it would change (nothing is changed yet)",
         responses={200: "the preview report and a token to import it", 400: "unreadable or wrong kind"})
def documents_preview():
    kind = request.form.get("kind", "")
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return jsonify(error="choose a file to upload"), 400
    data = upload.read()
    ctx = kit()
    try:
        _, report = import_document(ctx.config, ctx.db, kind, data, upload.filename, source="upload", dry_run=True)
    except DocumentError as e:
        return jsonify(error=str(e)), 400
    token = secrets.token_urlsafe(16)
    (_uploads_dir() / f"{token}.bin").write_bytes(data)
    (_uploads_dir() / f"{token}.json").write_text(json.dumps({"kind": kind, "filename": upload.filename}))
    return jsonify(token=token, kind=kind, filename=upload.filename, report=report.as_dict(), summary=report.summary())


@bp.route("/api/v1/documents/import", methods=["POST"])
@require_role("lead")
@api_doc("Import a previewed upload", request={"type": "object", "required": ["token"], "properties": {"token": {"type": "string"}}},
         responses={200: "the import report", 400: "not a JSON object with a token", 404: "no such preview (expired)"})
def documents_import():
    body = json_object()
    if body is None or not isinstance(body.get("token"), str):
        return jsonify(error='send a JSON object: {"token": "<the preview\'s token>"}', code="bad_body"), 400
    token = body["token"]
    if not token.replace("-", "").replace("_", "").isalnum() or len(token) > 64:
        return jsonify(error="unknown upload; upload the file again"), 404
    meta_path = _uploads_dir() / f"{token}.json"
    if not meta_path.exists():
        return jsonify(error="that preview expired; upload the file again"), 404
    meta = json.loads(meta_path.read_text())
    data = (_uploads_dir() / f"{token}.bin").read_bytes()
    ctx = kit()
    try:
        record, report = import_document(ctx.config, ctx.db, meta["kind"], data, meta["filename"], source="upload")
    except DocumentError as e:
        return jsonify(error=str(e)), 400
    meta_path.unlink(missing_ok=True)
    (_uploads_dir() / f"{token}.bin").unlink(missing_ok=True)
    ctx.bus.publish(topics.event(ctx.config.kit_id, *topics.DOCUMENT_IMPORTED), {"kind": meta["kind"], "version": record.version})
    return jsonify(version=record.version, report=report.as_dict(), summary=report.summary())
