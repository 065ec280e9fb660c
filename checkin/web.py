"""The door screen (role door) and the checkin API under /api/v1/checkin/.

The browser and ``fieldkit checkin scan`` go through the same domain functions; every verdict is
published on ``checkin/event/scanned`` so every open door screen updates over the event stream.
"""

from __future__ import annotations

import logging
import uuid

from flask import Blueprint, Response, jsonify, render_template, request

from checkin.demo import SAMPLES, load_samples, pick_sample
from checkin.events import SIMULATE, publish_scanned
from checkin.fallback_web import bp as fallback_bp
from checkin.guestlist import guestlist_html
from checkin.identity import FIELDS, held
from checkin.recorder import ScanRecorder
from checkin.rehearsal import practice_tickets, sheet_html, sheet_print_job
from checkin.scans import CheckinError, door_state, set_mode, undo_scan
from checkin.search import search_tickets
from checkin.stats import last_scans, stats
from checkin.validate import MAX_PAYLOAD, DoorRules, KeyRing, _row_ticket, decide
from checkin.web_common import error as _error
from checkin.web_common import json_body as _body
from kit import topics
from kit.web.auth import require_role
from kit.web.context import kit
from kit.web.openapi import api_doc

log = logging.getLogger("fieldkit.checkin.web")
_recorders: dict[int, ScanRecorder] = {}

VERDICT_SCHEMA = "verdict, colour (green|red|amber), attention, reason, name, ticket_type, door, seq, rehearsal"


def _rules() -> DoorRules:
    return DoorRules.from_config(kit().config)


def _recorder() -> ScanRecorder:
    """One group-committing recorder per web process: browsers scanning at once share commits."""
    ctx = kit()
    if id(ctx) not in _recorders:
        _recorders[id(ctx)] = ScanRecorder(ctx.db, ctx.ledger, _rules(), KeyRing())
    return _recorders[id(ctx)]


# Registered by kit/web/app.py through checkin/feature.py (``Feature.blueprint``), like every feature's.
bp = Blueprint("checkin", __name__, template_folder="templates", static_folder="static",
               static_url_path="/checkin/static")
bp.register_blueprint(fallback_bp)  # the second check, a lead's override, reissue, revoke, lift


def blueprint() -> Blueprint:
    """The feature's blueprint (``Feature.blueprint``): routes are module-level, registered once per app."""
    return bp


@bp.route("/door")
@require_role("door")
def door_page():
    ctx = kit()
    state = door_state(ctx.db.conn)
    return render_template("checkin/door.html", rules=_rules(), state=state, simulate=ctx.config.simulate,
                           samples=SAMPLES if ctx.config.simulate and load_samples(ctx.config) else (),
                           exits_allowed=ctx.config["checkin.exit_scans"])


@bp.route("/door/guestlist")
@require_role("door")
def guestlist_page():
    ctx = kit()
    event = ctx.config["kit.event"] or ctx.config.site  # the name every other page shows for the event
    page = guestlist_html(ctx.db.conn, event, ctx.config.tz, ctx.config.kit_id)
    return Response(page, mimetype="text/html")


@bp.route("/door/rehearsal-sheet")
@require_role("lead")
def rehearsal_sheet_page():
    ctx = kit()
    with ctx.db.transaction() as conn:
        sheet = practice_tickets(conn, ctx.config.secrets_dir, _rules())
    return Response(sheet_html(sheet, _rules().door), mimetype="text/html")


@bp.route("/api/v1/checkin/scan", methods=["POST"])
@require_role("door")
@api_doc("Validate and record one scanned code; answers the verdict",
         request={"type": "object", "required": ["payload"], "properties": {
             "payload": {"type": "string", "maxLength": MAX_PAYLOAD},
             "direction": {"type": "string", "enum": ["entry", "exit"]}}},
         responses={200: f"the verdict: {VERDICT_SCHEMA}", 400: "no payload"})
def api_scan():
    body = _body()
    payload = body.get("payload")
    if not isinstance(payload, str):
        return _error("send {\"payload\": \"<the scanned text>\"}")
    direction = body.get("direction")
    if direction not in (None, "entry", "exit"):
        return _error("direction must be entry or exit")
    ctx = kit()
    rules = _rules()
    result = _recorder().record(payload[:MAX_PAYLOAD + 1], source="api", direction=direction)
    return jsonify(publish_scanned(ctx.bus, ctx.db, rules, result))


@bp.route("/api/v1/checkin/stats")
@require_role("door")
@api_doc("Counts: in / expected, by type, arrivals in the last 15 minutes, double admissions")
def api_stats():
    ctx = kit()
    rules = _rules()
    result = stats(ctx.db.conn, rules, ctx.clock.time())
    state = door_state(ctx.db.conn)
    result.update(rehearsal=state.rehearsal, direction=state.direction, last_scans=last_scans(ctx.db.conn, rules))
    return jsonify(result)


@bp.route("/api/v1/checkin/search")
@require_role("door")
@api_doc("Find guests by name, e-mail or order code", query={"q": {"type": "string"}})
def api_search():
    ctx = kit()
    rehearsal = door_state(ctx.db.conn).rehearsal
    rules = _rules()
    results = search_tickets(ctx.db.conn, rules, request.args.get("q", ""), rehearsal=rehearsal)
    return jsonify(results=_admit_checked(ctx.db.conn, rules, results, ctx.ledger.clock.time(), rehearsal))


def _admit_checked(conn, rules: DoorRules, results: list[dict], now: float, rehearsal: bool) -> list[dict]:
    """Each result with whether a hand admit would be accepted now (``can_admit``) and, if not, why
    (``admit_refusal``): the door page says why instead of offering Admit and then refusing it."""
    for r in results:
        row = conn.execute("SELECT * FROM checkin_tickets WHERE ticket_key = ?", (r["ticket_key"],)).fetchone()
        d = decide(conn, rules, _row_ticket(row), now=now, direction="entry", rehearsal=rehearsal) if row else None
        r["can_admit"] = bool(d and d.admitted)
        r["admit_refusal"] = "" if r["can_admit"] else (d.reason if d else "not on the guest list")
        # What a second check may ask for (never the values) and the consent the import recorded.
        r["identifiers"] = [{"field": f, "label": FIELDS[f][1]} for f in held(row)] if row else []
        r["consent"] = _consent(row["consent"]) if row else {}
        r["revoked"] = bool(d and d.verdict in ("revoked", "blocked"))
    return results


def _consent(text: str) -> dict:
    import json

    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@bp.route("/api/v1/checkin/undo", methods=["POST"])
@require_role("lead")
@api_doc("Undo a mistaken admission (its own ledger event)",
         request={"type": "object", "required": ["seq"],
                  "properties": {"seq": {"type": "integer"}, "reason": {"type": "string"}}},
         responses={200: "undone", 400: "not an admission, or already undone"})
def api_undo():
    body = _body()
    seq, reason = body.get("seq"), body.get("reason") or "undone by a lead"
    if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(reason, str):
        return _error("send seq (the scan number) and a reason")
    ctx = kit()
    try:
        done = undo_scan(ctx.db, ctx.ledger, seq, reason, by="lead")
    except CheckinError as e:
        return _error(str(e))
    ctx.bus.publish(topics.event(ctx.config.kit_id, "checkin", "undone"), done)
    return jsonify(ok=True, **done)


@bp.route("/api/v1/checkin/mode", methods=["POST"])
@require_role("door")
@api_doc("Switch the door between entry and exit scans; a lead may switch rehearsal on or off",
         request={"type": "object", "properties": {"rehearsal": {"type": "boolean"},
                                                   "direction": {"type": "string", "enum": ["entry", "exit"]}}})
def api_mode():
    from kit.web.auth import current_role

    body = _body()
    rehearsal, direction = body.get("rehearsal"), body.get("direction")
    if rehearsal is not None and not isinstance(rehearsal, bool):
        return _error("rehearsal must be true or false")
    if rehearsal is not None and current_role() != "lead":
        return _error("only a lead switches rehearsal", "forbidden", 403)
    ctx = kit()
    if direction == "exit" and not ctx.config["checkin.exit_scans"]:
        return _error("this door does not take exit scans (checkin.exit_scans)")
    try:
        state = set_mode(ctx.db, ctx.ledger, rehearsal=rehearsal, direction=direction, by=current_role() or "")
    except CheckinError as e:
        return _error(str(e))
    ctx.bus.publish(topics.event(ctx.config.kit_id, "checkin", "mode"), vars(state))
    return jsonify(rehearsal=state.rehearsal, direction=state.direction)


@bp.route("/api/v1/checkin/rehearsal-sheet/print", methods=["POST"])
@require_role("lead")
@api_doc("Print the rehearsal sheet on the receipt printer (through the POS print queue)")
def api_print_sheet():
    ctx = kit()
    rules = _rules()
    with ctx.db.transaction() as conn:
        sheet = practice_tickets(conn, ctx.config.secrets_dir, rules)
    job = sheet_print_job(sheet, rules.door, uuid.uuid4().hex)
    ctx.bus.publish(topics.cmd(ctx.config.kit_id, *topics.POS_PRINT), job, qos=1)
    return jsonify(ok=True, id=job["id"], tickets=len(sheet))


@bp.route("/api/v1/checkin/demo/show", methods=["POST"])
@require_role("door")
@api_doc("Demo: show a sample ticket to the simulated camera or scanner",
         request={"type": "object", "required": ["sample"], "properties": {
             "sample": {"type": "string", "enum": list(SAMPLES)}, "source": {"type": "string"}}})
def api_demo_show():
    ctx = kit()
    samples = load_samples(ctx.config) if ctx.config.simulate else None
    if not samples:
        return _error("the demo panel needs a simulated kit with demo data (make demo)", "not_simulated", 409)
    body = _body()
    sample, source = body.get("sample"), body.get("source") or ""
    if sample not in SAMPLES or not isinstance(source, str):
        return _error(f"sample must be one of {', '.join(SAMPLES)}")
    payload = pick_sample(ctx.db.conn, samples, sample)
    ctx.bus.publish(topics.cmd(ctx.config.kit_id, "checkin", SIMULATE),
                    {"payload": payload, "source": source, "id": uuid.uuid4().hex}, qos=1)
    return jsonify(ok=True, sample=sample)
