"""The lead's Now / Next screen and the run-sheet API; the incident form (every role) and the Incidents board.

The web process reads the evening from the database itself (the run-sheet events are in the ledger
and the peer table), so the screen works even while the lead service restarts; Next slot and Running
late are ledger events written here, which the lead service shares with the site's other kits.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from flask import Blueprint, g, jsonify, render_template, request

from kit.web.auth import SIGNED_IN, require_role
from kit.web.context import kit
from kit.web.openapi import api_doc
from lead.evening import LeadError, evening, next_slot, open_doors, running_late, version
from lead.incidents import (
    CATEGORIES,
    MAX_NOTE,
    SEVERITIES,
    IncidentError,
    acknowledge,
    list_incidents,
    log_incident,
    resolve,
)
from lead.numbers import kit_numbers
from lead.signups import add_signup

HERE = Path(__file__).parent
bp = Blueprint("lead", __name__, template_folder=str(HERE / "templates"))
LATE_BODY = {"type": "object", "properties": {"minutes": {"type": "number", "minimum": 0.1, "maximum": 240}}}


_folded: list = [None, None]  # (version, evening): folded once per change; every screen's header asks


def _evening(ctx):
    key = version(ctx.db.conn)
    held = _folded[0]
    if held is None or held[0] != key:
        held = (key, evening(ctx.db.conn, ctx.config.kit_id, ctx.config.tz))
        _folded[0] = held  # one assignment: a thread never sees a version with another version's evening
    return held[1]


def _now_view() -> dict:
    ctx = kit()
    now = ctx.clock.time()
    ev = _evening(ctx)
    view = ev.at(now).as_dict() if ev.sheet else {"current": None, "next": None, "behind_seconds": 0, "finished": False}
    return {"runsheet": {"name": ev.sheet.name, "digest": ev.sheet.digest, "slots": len(ev.sheet.slots)} if ev.sheet else None,
            **view, "now": round(now, 3), "ending_seconds": ctx.config["lead.ending_seconds"],
            "late_minutes": ctx.config["lead.late_minutes"]}


def _refuse(error: Exception, status: int = 400):
    return jsonify(error=str(error), code="refused"), status


@bp.get("/lead")
@require_role("lead")
def now_screen():
    return render_template("lead/now.html", view=_now_view())


@bp.get("/api/v1/lead/now")
@require_role(SIGNED_IN)
@api_doc("The run-sheet's current and next slot and how far behind plan (every signed-in role: screens show the slot)",
         responses={200: "current, next, behind_seconds, now (the kit's time)"})
def api_now():
    return jsonify(_now_view())


@bp.get("/lead/numbers")
@require_role("lead")
def numbers_page():
    ctx = kit()
    return render_template("lead/numbers.html", n=kit_numbers(ctx.db, ctx.config.tz))


@bp.get("/api/v1/lead/metrics")
@require_role("lead")
@api_doc("The evening's numbers: attendance, go-live, conversion per 100 admitted, per slot (same as fieldkit metrics)",
         responses={200: "the figures and a line of help for each"})
def api_metrics():
    ctx = kit()
    return jsonify(kit_numbers(ctx.db, ctx.config.tz))


SIGNUP_BODY = {"type": "object", "required": ["email", "consent"], "properties": {
    "email": {"type": "string", "maxLength": 254}, "consent": {"type": "boolean"},
    "ticket": {"type": "string", "maxLength": 128}, "receipt": {"type": "string", "maxLength": 128}}}


@bp.get("/signup")
@require_role(SIGNED_IN)
def signup_page():
    """Any signed-in role: door and merch staff add a guest's e-mail with the guest's consent."""
    return render_template("lead/signup.html", consent=kit().config["lead.signup_consent"])


@bp.post("/api/v1/lead/signups")
@require_role(SIGNED_IN)
@api_doc("Add a guest's e-mail to the organiser's list, with the consent sentence they agreed to "
         "(the e-mail goes to HQ with the next sync, never into the ledger)", request=SIGNUP_BODY,
         responses={201: "the signup's id", 400: "no consent, or not an e-mail address"})
def api_signup():
    ctx = kit()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return jsonify(error="send {\"email\", \"consent\": true}", code="bad_body"), 400
    try:
        with ctx.db.transaction() as conn:
            made = add_signup(conn, ctx.ledger, ctx.config, email=str(body.get("email", ""))[:300],
                              consent=body.get("consent"), ticket=str(body.get("ticket", "") or "")[:200],
                              receipt=str(body.get("receipt", "") or "")[:200], by=g.role)
    except LeadError as e:
        return _refuse(e)
    return jsonify(made), 201


@bp.get("/api/v1/lead/runsheet")
@require_role("lead")
@api_doc("Every slot of the run-sheet with its planned and current times", responses={200: "the slots", 404: "no run-sheet"})
def api_runsheet():
    ctx = kit()
    ev = _evening(ctx)
    if ev.sheet is None:
        return jsonify(error="no run-sheet: import one on the Documents page", code="no_runsheet"), 404
    return jsonify(name=ev.sheet.name, date=ev.sheet.evening, digest=ev.sheet.digest, published_by=ev.published_by,
                   slots=[t.as_dict() for t in ev.slots])


@bp.post("/api/v1/lead/next")
@require_role("lead")
@api_doc("Next slot: the next slot starts now (the running one ends now); every later slot moves with it",
         responses={200: "the new current and next slot", 400: "no run-sheet, or nothing left"})
def api_next():
    ctx = kit()
    try:
        with ctx.db.transaction() as conn:
            view = next_slot(conn, ctx.ledger, ctx.config.tz, by=g.role)
    except LeadError as e:
        return _refuse(e)
    return jsonify(view)


@bp.post("/api/v1/lead/doors-open")
@require_role("lead")
@api_doc("The doors are open now: the evening's go-live counts from here (once an evening)",
         responses={200: "when", 400: "the doors were already opened"})
def api_doors_open():
    ctx = kit()
    try:
        with ctx.db.transaction() as conn:
            return jsonify(open_doors(conn, ctx.ledger, ctx.config.tz, by=g.role))
    except LeadError as e:
        return _refuse(e)


@bp.post("/api/v1/lead/late")
@require_role("lead")
@api_doc("Running late: the running slot gets more time and every later slot moves (default lead.late_minutes)",
         request=LATE_BODY, responses={200: "the new current and next slot", 400: "bad minutes, no run-sheet, or nothing left"})
def api_late():
    ctx = kit()
    body = request.get_json(silent=True)
    minutes = body.get("minutes", ctx.config["lead.late_minutes"]) if isinstance(body, dict) else ctx.config["lead.late_minutes"]
    try:
        with ctx.db.transaction() as conn:
            view = running_late(conn, ctx.ledger, ctx.config.tz, minutes, by=g.role)
    except LeadError as e:
        return _refuse(e)
    return jsonify(view)


# --- the incident log (lead/incidents.py) -------------------------------------------------------------

INCIDENT_BODY = {"type": "object", "required": ["category", "severity", "note"], "properties": {
    "category": {"type": "string", "enum": list(CATEGORIES)}, "severity": {"type": "string", "enum": list(SEVERITIES)},
    "note": {"type": "string", "minLength": 1, "maxLength": MAX_NOTE}, "concerns": {"type": "string", "maxLength": 128}}}
RESOLVE_BODY = {"type": "object", "properties": {"note": {"type": "string", "maxLength": MAX_NOTE}}}


@bp.app_template_filter("incident_time")
def incident_time(at: float, tz) -> str:
    """19:42 tonight; 'Fri 19:42' for an incident of an earlier evening."""
    try:
        when = datetime.fromtimestamp(float(at), tz)
    except (OverflowError, OSError, ValueError, TypeError):
        return "?"
    return f"{when:%H:%M}" if abs(time.time() - when.timestamp()) < 18 * 3600 else f"{when:%a %d %b %H:%M}"


def _text_field(body: dict, key: str, limit: int) -> str:
    value = body.get(key, "")
    return value[: limit + 1] if isinstance(value, str) else "" if value is None else str(value)[: limit + 1]


@bp.get("/incident")
@require_role(SIGNED_IN)
def incident_page():
    """Any signed-in role logs an incident (the header's Incident link on every page)."""
    return render_template("lead/incident.html", categories=CATEGORIES, severities=SEVERITIES, max_note=MAX_NOTE,
                           concerns=request.args.get("concerns", "")[:128])


@bp.get("/lead/incidents")
@require_role("lead")
def incidents_board():
    ctx = kit()
    return render_template("lead/incidents.html", incidents=list_incidents(ctx.db.conn), tz=ctx.config.tz)


@bp.post("/api/v1/lead/incidents")
@require_role(SIGNED_IN)
@api_doc("Log an incident (every signed-in role): category, severity, a note, optionally the ticket or receipt it "
         "concerns; shared with every kit of the site and uploaded to HQ", request=INCIDENT_BODY,
         responses={201: "the incident", 400: "empty note, unknown category or severity"})
def api_incident_add():
    ctx = kit()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return jsonify(error='send {"category", "severity", "note"}', code="bad_body"), 400
    try:
        with ctx.db.transaction() as conn:
            made = log_incident(conn, ctx.ledger, category=_text_field(body, "category", 40),
                                severity=_text_field(body, "severity", 40), note=_text_field(body, "note", MAX_NOTE),
                                concerns=_text_field(body, "concerns", 128), by=g.role)
    except IncidentError as e:
        return _refuse(e)
    return jsonify(made), 201


@bp.get("/api/v1/lead/incidents")
@require_role("lead")
@api_doc("The site's incidents: open, acknowledged and resolved, who did what and when",
         query={"state": {"type": "string", "enum": ["open", "acknowledged", "resolved"]}},
         responses={200: "incidents, newest first", 400: "unknown state"})
def api_incidents():
    try:
        return jsonify(incidents=list_incidents(kit().db.conn, request.args.get("state") or None))
    except IncidentError as e:
        return _refuse(e)


@bp.post("/api/v1/lead/incidents/<ref>/ack")
@require_role("lead")
@api_doc("Acknowledge an incident: a lead has taken it on (every kit of the site shows who)",
         responses={200: "the incident", 400: "unknown, or already acknowledged or resolved"})
def api_incident_ack(ref: str):
    ctx = kit()
    try:
        with ctx.db.transaction() as conn:
            return jsonify(acknowledge(conn, ctx.ledger, ref[:64], by=g.role))
    except IncidentError as e:
        return _refuse(e)


@bp.post("/api/v1/lead/incidents/<ref>/resolve")
@require_role("lead")
@api_doc("Resolve an incident, with a line on how (optional)", request=RESOLVE_BODY,
         responses={200: "the incident", 400: "unknown or already resolved"})
def api_incident_resolve(ref: str):
    ctx = kit()
    body = request.get_json(silent=True)
    note = _text_field(body, "note", MAX_NOTE) if isinstance(body, dict) else ""
    try:
        with ctx.db.transaction() as conn:
            return jsonify(resolve(conn, ctx.ledger, ref[:64], by=g.role, note=note))
    except IncidentError as e:
        return _refuse(e)
