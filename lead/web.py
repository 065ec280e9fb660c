"""The lead's Now / Next screen and the run-sheet API.

The web process reads the evening from the database itself (the run-sheet events are in the ledger
and the peer table), so the screen works even while the lead service restarts; Next slot and Running
late are ledger events written here, which the lead service shares with the site's other kits.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, g, jsonify, render_template, request

from kit.web.auth import SIGNED_IN, require_role
from kit.web.context import kit
from kit.web.openapi import api_doc
from lead.evening import LeadError, evening, next_slot, open_doors, running_late, version
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
