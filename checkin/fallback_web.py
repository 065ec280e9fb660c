"""The door's fallbacks over HTTP: the second check, a lead's override, reissue, revoke and lift.

Registered inside the checkin blueprint (checkin/web.py). A door session may admit by the second
check (two identifiers the list holds); everything else needs a lead: a lead's session, or the lead's
PIN typed on the door screen (``lead_pin``, throttled like signing in).
"""

from __future__ import annotations

import logging
import uuid

from flask import Blueprint, g, jsonify

from checkin.events import publish_scanned
from checkin.identity import confirm, held
from checkin.reissue import lift, print_job, qr_svg, reissue, revoke
from checkin.scans import CheckinError, manual_admit
from checkin.validate import DoorRules, KeyRing
from checkin.web_common import error as _error
from checkin.web_common import json_body as _body
from kit import topics
from kit.web.auth import lead_approved, require_role
from kit.web.context import kit
from kit.web.openapi import api_doc

log = logging.getLogger("fieldkit.checkin.web")
bp = Blueprint("fallback", __name__)
_keyrings: dict[int, KeyRing] = {}
IDENTIFIERS = {
    "type": "object",
    "description": "what the guest said: order_code, email, phone_last4, postcode,"
    " birth_date (two of those the list holds)",
}
LEAD_PIN = {"type": "string", "description": "the lead's PIN when the session is not a lead's"}


def _rules() -> DoorRules:
    return DoorRules.from_config(kit().config)


def _keyring() -> KeyRing:
    return _keyrings.setdefault(id(kit()), KeyRing())


def _text(body: dict, name: str) -> str | None:
    value = body.get(name, "")
    return value if isinstance(value, str) else None


NEEDS_LEAD = "a lead's PIN is needed for this (or sign in as the lead)"


@bp.route("/api/v1/checkin/admit", methods=["POST"])
@require_role("door")
@api_doc(
    "Admit by the second check (two identifiers the list holds) or, with a lead's approval, by a reason",
    request={
        "type": "object",
        "required": ["ticket_key"],
        "properties": {
            "ticket_key": {"type": "string"},
            "identifiers": IDENTIFIERS,
            "reason": {"type": "string"},
            "lead_pin": LEAD_PIN,
        },
    },
    responses={
        200: "the verdict (its method: second_check or lead_override)",
        400: "identifiers do not match, no reason, unknown ticket",
        403: "a lead's approval is needed",
    },
)
def api_admit():
    body = _body()
    key, reason, identifiers = _text(body, "ticket_key"), _text(body, "reason"), body.get("identifiers")
    if not key or reason is None or (identifiers is not None and not isinstance(identifiers, dict)):
        return _error("send ticket_key and either identifiers (the second check) or a reason")
    if identifiers is None and not lead_approved(body):
        return _error("no second check: " + NEEDS_LEAD + " to admit with a reason", "lead_needed", 403)
    ctx = kit()
    rules = _rules()
    try:
        result = manual_admit(
            ctx.db,
            ctx.ledger,
            rules,
            key,
            reason,
            identifiers=identifiers,
            by="lead" if identifiers is None else (g.get("role") or "door"),
        )
    except CheckinError as e:
        return _error(str(e))
    return jsonify(publish_scanned(ctx.bus, ctx.db, rules, result))


@bp.route("/api/v1/checkin/reissue", methods=["POST"])
@require_role("door")
@api_doc(
    "Reissue a ticket (lead): the old code is revoked everywhere, a new one is printed and shown",
    request={
        "type": "object",
        "required": ["ticket_key", "reason"],
        "properties": {
            "ticket_key": {"type": "string"},
            "reason": {"type": "string"},
            "identifiers": IDENTIFIERS,
            "lead_pin": LEAD_PIN,
        },
    },
    responses={
        200: "the new code: ticket_key, qr_svg, time, door, printed",
        400: "unknown or revoked ticket, identifiers do not match",
        403: "a lead's approval is needed",
    },
)
def api_reissue():
    body = _body()
    key, reason, identifiers = _text(body, "ticket_key"), _text(body, "reason"), body.get("identifiers")
    if not key or reason is None or (identifiers is not None and not isinstance(identifiers, dict)):
        return _error("send ticket_key, reason and the identifiers the guest confirmed")
    if not lead_approved(body):
        return _error("reissue: " + NEEDS_LEAD, "lead_needed", 403)
    ctx = kit()
    rules = _rules()
    row = ctx.db.conn.execute("SELECT * FROM checkin_tickets WHERE ticket_key = ?", (key,)).fetchone()
    try:
        if row is None:
            raise CheckinError("no such ticket on the guest list")
        # Who the guest is, first: two identifiers the list holds; only where it holds fewer is the lead's word enough.
        if identifiers or len(held(row)) >= 2:
            confirm(row, identifiers or {})
            identity = "second_check"
        else:
            identity = "lead_override"
        result = reissue(
            ctx.db, ctx.ledger, rules, _keyring(), key, reason, by=g.get("role") or "lead", identity=identity
        )
    except CheckinError as e:
        return _error(str(e))
    job = print_job(result, ctx.config["kit.event"] or "", uuid.uuid4().hex)
    ctx.bus.publish(topics.cmd(ctx.config.kit_id, *topics.POS_PRINT), job, qos=1)
    printed = bool(ctx.bus.is_connected)  # sent to the receipt printer's queue (the pos service prints it)
    ctx.bus.publish(
        topics.event(ctx.config.kit_id, "checkin", "reissued"),
        {k: result[k] for k in ("ticket_type", "door", "at", "seq")},
    )
    return jsonify(ok=True, **result, identity=identity, qr_svg=qr_svg(result["ticket_key"]), printed=printed)


@bp.route("/api/v1/checkin/revoke", methods=["POST"])
@require_role("door")
@api_doc(
    "Revoke (or block) a ticket at the door (lead), shared with every door of the site",
    request={
        "type": "object",
        "required": ["ticket_key", "reason"],
        "properties": {
            "ticket_key": {"type": "string"},
            "reason": {"type": "string"},
            "blocked": {"type": "boolean"},
            "lead_pin": LEAD_PIN,
        },
    },
)
def api_revoke():
    body = _body()
    key, reason, blocked = _text(body, "ticket_key"), _text(body, "reason"), body.get("blocked", False)
    if not key or reason is None or not isinstance(blocked, bool):
        return _error("send ticket_key and reason (and blocked: true to block instead)")
    if not lead_approved(body):
        return _error("revoke: " + NEEDS_LEAD, "lead_needed", 403)
    ctx = kit()
    try:
        done = revoke(
            ctx.db, ctx.ledger, _rules(), _keyring(), key, reason, by=g.get("role") or "lead", blocked=blocked
        )
    except CheckinError as e:
        return _error(str(e))
    ctx.bus.publish(topics.event(ctx.config.kit_id, "checkin", "revoked"), {"seq": done["seq"]})
    return jsonify(ok=True, **done)


@bp.route("/api/v1/checkin/lift", methods=["POST"])
@require_role("door")
@api_doc(
    "Lift a revocation (lead) with a reason, shared with every door of the site",
    request={
        "type": "object",
        "required": ["ticket_key", "reason"],
        "properties": {"ticket_key": {"type": "string"}, "reason": {"type": "string"}, "lead_pin": LEAD_PIN},
    },
)
def api_lift():
    body = _body()
    key, reason = _text(body, "ticket_key"), _text(body, "reason")
    if not key or reason is None:
        return _error("send ticket_key and reason")
    if not lead_approved(body):
        return _error("lift: " + NEEDS_LEAD, "lead_needed", 403)
    ctx = kit()
    try:
        done = lift(ctx.db, ctx.ledger, _rules(), _keyring(), key, reason, by=g.get("role") or "lead")
    except CheckinError as e:
        return _error(str(e))
    ctx.bus.publish(topics.event(ctx.config.kit_id, "checkin", "lifted"), {"seq": done["seq"]})
    return jsonify(ok=True, **done)
