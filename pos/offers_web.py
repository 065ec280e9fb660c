"""The merch table's timed offers on the web: pickups (with their windows and board) and live drops."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, render_template, request

from kit.web.auth import require_role
from kit.web.context import kit
from kit.web.openapi import api_doc
from pos import drops
from pos.drop_members import in_members_window, unlock
from pos.money import MoneyError, parse_cents
from pos.pickups import PickupEarly, PickupError, board, collect, lookup
from pos.web_common import refuse as _refuse

bp = Blueprint("offers", __name__)


# --- pickups ----------------------------------------------------------------------------------
@bp.route("/api/v1/pos/pickups/<path:code>")
@require_role("merch")
@api_doc("What a pickup code is for and whether it was collected", responses={200: "the order", 404: "unknown code"})
def api_pickup(code: str):
    ctx = kit()
    try:
        return jsonify(lookup(ctx.db.conn, code[:128], ctx.clock.time(), ctx.config.tz))
    except PickupError as e:
        return _refuse(e, 404)


@bp.route("/api/v1/pos/pickups/<path:code>/collect", methods=["POST"])
@require_role("merch")
@api_doc("Mark a pickup handed over (once); before its window only a lead may, with early_ok",
         request={"type": "object", "properties": {"early_ok": {"type": "boolean"}}},
         responses={200: "what to hand over (timing: any, in_window, late or early_override)", 404: "unknown code",
                    403: "early_ok needs the lead role", 409: "already collected, or early: when to come back"})
def api_collect(code: str):
    ctx = kit()
    body = request.get_json(silent=True)
    early_ok = isinstance(body, dict) and body.get("early_ok") is True
    if early_ok and g.role != "lead":
        return jsonify(error="only a lead may hand over a pickup before its window", code="forbidden"), 403
    try:
        return jsonify(collect(ctx.db, ctx.ledger, code[:128], by=g.role, tz=ctx.config.tz, early_ok=early_ok))
    except PickupEarly as e:
        return jsonify(error=str(e), code="early"), 409
    except PickupError as e:
        return _refuse(e, 409 if "already collected" in str(e) else 404)


@bp.route("/api/v1/pos/pickup-board")
@require_role("merch")
@api_doc("The pickup board: due in the next 30 minutes, collected, not collected in their window",
         responses={200: "due, collected, not_collected"})
def api_pickup_board():
    ctx = kit()
    return jsonify(board(ctx.db.conn, ctx.clock.time(), ctx.config.tz))


@bp.route("/merch/pickups")
@require_role("merch")
def pickup_board_page():
    ctx = kit()
    return render_template("pos/pickups.html", board=board(ctx.db.conn, ctx.clock.time(), ctx.config.tz))


# --- live drops -------------------------------------------------------------------------------
DROP_BODY = {"type": "object", "required": ["name", "sku", "price", "quantity", "minutes"], "properties": {
    "name": {"type": "string", "maxLength": 60}, "sku": {"type": "string", "maxLength": 64},
    "price": {"type": "string", "maxLength": 12}, "quantity": {"type": "integer", "minimum": 1, "maximum": 100000},
    "minutes": {"type": "number", "minimum": 0.1, "maximum": 1440},
    "members_minutes": {"type": "number", "description": "members first: only these ticket types buy for this long"},
    "member_types": {"type": "array", "items": {"type": "string", "maxLength": 80}, "maxItems": 20}}}
UNLOCK_BODY = {"type": "object", "required": ["code"], "properties": {"code": {"type": "string", "maxLength": 4096}}}
VERIFY_SECONDS = 3.0


@bp.route("/api/v1/pos/drops")
@require_role("merch")
@api_doc("Live drops on this site: quantity, sold on every kit (as far as this kit has heard), left, phase, ends at",
         responses={200: "the drops"})
def api_drops():
    ctx = kit()
    return jsonify(drops=drops.status(ctx.db.conn, ctx.clock.time()), now=ctx.clock.time())


@bp.route("/api/v1/pos/drops", methods=["POST"])
@require_role("lead")
@api_doc("Start a drop now on every merch kit of the site", request=DROP_BODY,
         responses={201: "the drop", 400: "refused: bad quantity, price or window, unknown SKU, or one already on it"})
def api_drop_start():
    ctx = kit()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return jsonify(error="send the drop as a JSON object", code="bad_body"), 400
    try:
        price_cents = parse_cents(body.get("price"), what="price")
        with ctx.db.transaction() as conn:
            view = drops.start_drop(conn, ctx.ledger, name=body.get("name"), sku=str(body.get("sku", ""))[:64],
                                    price_cents=price_cents, quantity=body.get("quantity"), minutes=body.get("minutes"),
                                    by=g.role, members_minutes=body.get("members_minutes"),
                                    member_types=body.get("member_types") if isinstance(body.get("member_types"), list)
                                    else None)
    except (drops.DropError, MoneyError, TypeError) as e:
        return _refuse(e)
    return jsonify(view), 201


@bp.route("/api/v1/pos/drops/<name>/stop", methods=["POST"])
@require_role("lead")
@api_doc("Stop a drop now: the product is back at its normal price", responses={200: "the drop", 400: "no such drop"})
def api_drop_stop(name: str):
    ctx = kit()
    try:
        with ctx.db.transaction() as conn:
            return jsonify(drops.stop_drop(conn, ctx.ledger, name[:64], by=g.role))
    except drops.DropError as e:
        return _refuse(e)


@bp.route("/api/v1/pos/drops/<name>/unlock", methods=["POST"])
@require_role("merch")
@api_doc("Members first: a scanned ticket of a member type unlocks one unit at the drop's price, once per site",
         request=UNLOCK_BODY,
         responses={200: "unlock_id to send with the sale (in 'unlocks')", 400: "no such drop, or not in its members' window",
                    409: "not a member type, already used, or refused by check-in", 503: "check-in did not answer"})
def api_drop_unlock(name: str):
    ctx = kit()
    body = request.get_json(silent=True)
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, str) or not code.strip() or len(code) > 4096:
        return jsonify(error="scan the buyer's ticket: send its code", code="bad_body"), 400
    try:  # first: a drop not in its members' window needs no ticket check
        in_members_window(ctx.db.conn, name[:64], ctx.clock.time())
    except drops.DropError as e:
        return _refuse(e)
    # The ticket is check-in's to judge (features never import each other): asked over the bus.
    verified = ctx.bus.request("checkin", "verify", {"code": code.strip()}, timeout=VERIFY_SECONDS)
    try:
        with ctx.db.transaction() as conn:
            return jsonify(unlock(conn, ctx.ledger, name[:64], verified, by=g.role, tz=ctx.config.tz))
    except drops.DropError as e:
        return _refuse(e, 503 if verified is None else 409)
