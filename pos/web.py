"""The merch screen, the lead's pos screens, and the pos JSON API (same domain code as the CLI)."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Blueprint, Response, g, jsonify, render_template, request

from kit.web.auth import lead_approved, require_role
from kit.web.context import kit
from kit.web.openapi import api_doc
from pos import printqueue, stats
from pos.catalogue import CatalogueError, catalogue_view, edit_product, products
from pos.checkout import IdempotencyConflict, document_view, make_sale, parse_sale_request, quote, sale_view
from pos.money import MoneyError, parse_cents
from pos.offers_web import bp as offers_bp
from pos.pricing import CheckoutError
from pos.records import record
from pos.refunds import RefundError, refund
from pos.shifts import ShiftError, cash_move, close_shift, open_shift, x_report
from pos.web_common import refuse

log = logging.getLogger("fieldkit.pos.web")
HERE = Path(__file__).parent

SALE_SCHEMA = {
    "type": "object", "required": ["items"],
    "properties": {
        "items": {"type": "array", "items": {"type": "object", "required": ["sku"], "properties": {
            "sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1},
            "discount": {"type": "object", "description": '{"percent": "10", "reason": "crew"} or {"amount": "2.00", "reason": ...}'}}}},
        "discount": {"type": "object"},
        "payments": {"type": "array", "items": {"type": "object", "required": ["method"], "properties": {
            "method": {"type": "string", "enum": ["cash", "card", "other"]},
            "amount": {"type": "string", "description": "decimal, e.g. 20.00"}, "amount_cents": {"type": "integer"},
            "reference": {"type": "string"}, "last4": {"type": "string"}}}},
        "idempotency_key": {"type": "string", "description": "the same key again returns the same sale"},
    },
}
REFUND_SCHEMA = {
    "type": "object", "required": ["reason"],
    "properties": {
        "reason": {"type": "string"}, "void": {"type": "boolean"},
        "items": {"type": "array", "items": {"type": "object", "properties": {"line": {"type": "integer"}, "qty": {"type": "integer"}}}},
        "amount": {"type": "string"}, "method": {"type": "string", "enum": ["cash", "card", "other"]},
        "lead_pin": {"type": "string", "description": "a lead's PIN when the session is not a lead's"},
        "idempotency_key": {"type": "string"},
    },
}


def _body() -> dict:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


_refuse = refuse


def _printer_state() -> dict:
    ctx = kit()
    latest = ctx.bus.hub.latest()
    state = dict(latest.get("pos/state") or {})
    state["queued"] = printqueue.depth(ctx.db)
    state.setdefault("printer", "unknown")
    state["service"] = (latest.get("pos/health") or {}).get("state", "unknown")
    return state


def _with_preview(report: dict) -> dict:
    from pos.receipts import lines_to_html
    from pos.reports import report_document

    return {**report, "preview_html": lines_to_html(report_document(report, kit().config))}


bp = Blueprint("pos", __name__, template_folder=str(HERE / "templates"), static_folder=str(HERE / "static"),
               static_url_path="/pos/static")
bp.register_blueprint(offers_bp)  # pickups and live drops (pos/offers_web.py)


# --- pages ------------------------------------------------------------------------------------
@bp.route("/merch")
@require_role("merch")
def merch_page():
    ctx = kit()
    return render_template("pos/merch.html", currency=ctx.config["kit.currency"], role=g.role,
                           simulated=ctx.config.backend("pos.printer.backend") == "sim")


@bp.route("/pos/lead")
@require_role("lead")
def lead_page():
    ctx = kit()
    return render_template("pos/lead.html", currency=ctx.config["kit.currency"],
                           denominations=list(ctx.config["pos.denominations"]))


# --- catalogue --------------------------------------------------------------------------------
@bp.route("/api/v1/pos/catalogue")
@require_role("merch")
@api_doc("Products on sale, grouped with their variants; price in cents and remaining stock",
         query={"all": {"type": "boolean"}})
def api_catalogue():
    ctx = kit()
    view = catalogue_view(ctx.db.conn, active_only=request.args.get("all") not in ("1", "true"))
    return jsonify(currency=ctx.config["kit.currency"], **view)


@bp.route("/api/v1/pos/catalogue/<sku>", methods=["POST"])
@require_role("lead")
@api_doc("A lead edits (or adds) one product", request={"type": "object", "properties": {
    k: {"type": "string"} for k in ("name", "variant", "price", "tax_rate", "stock", "barcode")}},
    responses={200: "the product as stored", 400: "a value is not valid"})
def api_edit_product(sku: str):
    ctx = kit()
    body = _body()
    try:
        with ctx.db.transaction() as conn:
            p = edit_product(conn, sku.strip(), body, ctx.config, by=g.role)
            record(conn, ctx.ledger, "pos.product_edited", {"sku": p.sku, "changes": {k: str(v) for k, v in body.items()},
                                                            "by": g.role})
    except CatalogueError as e:
        return _refuse(e)
    return jsonify(product=p.as_dict())


# --- sales ------------------------------------------------------------------------------------
@bp.route("/api/v1/pos/sales", methods=["POST"])
@require_role("merch")
@api_doc("Make a sale: one committed sale with a gapless receipt number; the receipt is queued for the printer",
         request=SALE_SCHEMA,
         responses={201: "the sale, the change due and the receipt preview", 200: "the same idempotency key again: the same sale",
                    400: "bad cart or payment (nothing recorded)", 409: "idempotency key already used for another cart"})
def api_sell():
    ctx = kit()
    try:
        result = make_sale(ctx.db, ctx.ledger, ctx.config, parse_sale_request(request.get_json(silent=True)), by=g.role)
    except IdempotencyConflict as e:
        return _refuse(e, 409)
    except CheckoutError as e:
        return _refuse(e)
    view = document_view(ctx.db, ctx.config, result.sale, result.lines, just_made=not result.replayed)
    return jsonify(replayed=result.replayed, receipt=result.receipt, change_cents=result.change_cents,
                   printer=_printer_state(), **view), 200 if result.replayed else 201


@bp.route("/api/v1/pos/quote", methods=["POST"])
@require_role("merch")
@api_doc("Price a cart (discounts, tax, total) without selling it", request=SALE_SCHEMA,
         responses={200: "the totals", 400: "bad cart"})
def api_quote():
    ctx = kit()
    try:
        return jsonify(quote(ctx.db, ctx.config, request.get_json(silent=True), ctx.clock))
    except CheckoutError as e:
        return _refuse(e)


@bp.route("/api/v1/pos/sales")
@require_role("merch")
@api_doc("The most recent sales, refunds and voids", query={"limit": {"type": "integer"}})
def api_recent():
    limit = min(max(request.args.get("limit", 30, type=int) or 30, 1), 200)
    return jsonify(sales=stats.recent_sales(kit().db, limit))


@bp.route("/api/v1/pos/sales/<sale_id>")
@require_role("merch")
@api_doc("One sale (by id or receipt number) with its refunds, print status and receipt preview",
         responses={200: "the sale", 404: "no such sale"})
def api_sale(sale_id: str):
    ctx = kit()
    view = sale_view(ctx.db, ctx.config, sale_id[:80])
    if view is None:
        return jsonify(error=f"no sale {sale_id[:80]!r} on this kit"), 404
    return jsonify(**view)


@bp.route("/api/v1/pos/sales/<sale_id>/qr.svg")
@require_role("merch")
@api_doc("The QR code of a sale's receipt (its id) as SVG, as the paper shows it; the same for the life of the sale",
         responses={200: "image/svg+xml", 404: "no such sale"})
def api_sale_qr(sale_id: str):
    from pos.receipts import _qr_svg, sale_document

    doc = sale_document(kit().db.conn, sale_id[:80])
    if doc is None:  # only sales of this kit: not a QR encoder for any text
        return jsonify(error=f"no sale {sale_id[:80]!r} on this kit"), 404
    return Response(_qr_svg(doc["id"]), mimetype="image/svg+xml",
                    headers={"Cache-Control": "private, max-age=86400, immutable"})


@bp.route("/api/v1/pos/sales/<sale_id>/refund", methods=["POST"])
@require_role("merch")
@api_doc("Refund part of a sale or void it (a new document); needs a lead's session or lead_pin",
         request=REFUND_SCHEMA, responses={201: "the refund document", 400: "not possible as asked",
                                           403: "no lead approval", 404: "no such sale"})
def api_refund(sale_id: str):
    ctx = kit()
    body = _body()
    if not lead_approved(body):
        return _refuse(PermissionError("a refund needs a lead: sign in as lead or enter the lead PIN"), 403)
    try:
        amount = parse_cents(body["amount"], what="refund amount") if body.get("amount") not in (None, "") else None
        doc = refund(ctx.db, ctx.ledger, ctx.config, sale_id[:80], reason=str(body.get("reason") or ""),
                     items=body.get("items"), amount_cents=amount, void=bool(body.get("void")),
                     method=body.get("method") or None, reference=str(body.get("reference") or ""),
                     by="lead", idempotency_key=body.get("idempotency_key") or None)
    except (RefundError, MoneyError) as e:
        return _refuse(e, 404 if str(e).startswith("no sale") else 400)
    return jsonify(refund=doc, **sale_view(ctx.db, ctx.config, doc["id"])), 201


@bp.route("/api/v1/pos/sales/<sale_id>/reprint", methods=["POST"])
@require_role("merch")
@api_doc("Queue a copy of a receipt", responses={200: "queued", 404: "no such receipt"})
def api_reprint(sale_id: str):
    from pos.receipts import reprint

    ctx = kit()
    try:
        job = reprint(ctx.db, ctx.config, sale_id[:80], clock=ctx.clock)
    except LookupError as e:
        return _refuse(e, 404)
    return jsonify(job=job, printer=_printer_state())


# --- printer, stats -----------------------------------------------------------------------------
@bp.route("/api/v1/pos/printer")
@require_role("merch")
@api_doc("The receipt printer as the pos service last saw it, and how many receipts wait")
def api_printer():
    return jsonify(_printer_state())


@bp.route("/api/v1/pos/printer/sim", methods=["POST"])
@require_role("merch")
@api_doc("Rehearsal: switch the simulated printer off/on or out of paper", request={"type": "object", "properties": {
    "online": {"type": "boolean"}, "paper": {"type": "string", "enum": ["ok", "low", "out"]}}},
    responses={200: "the simulated printer's state", 409: "the kit does not use the simulated printer"})
def api_printer_sim():
    from drivers.printer import SimulatedReceiptPrinter, sim_folder

    ctx = kit()
    if ctx.config.backend("pos.printer.backend") != "sim":
        return jsonify(error="this kit drives a real printer"), 409
    body = _body()
    try:
        online = body.get("online")
        state = SimulatedReceiptPrinter(sim_folder(ctx.config)).set_state(
            online=None if online is None else bool(online), paper=body.get("paper"))
    except ValueError as e:
        return _refuse(e)
    return jsonify(state)


@bp.route("/api/v1/pos/stats")
@require_role("merch")
@api_doc("Sales per hour for the last 12 hours (local time)")
def api_stats():
    ctx = kit()
    return jsonify(currency=ctx.config["kit.currency"], per_hour=stats.sales_per_hour(ctx.db, ctx.config, ctx.clock.time()))


# --- shifts (lead) ----------------------------------------------------------------------------
@bp.route("/api/v1/pos/shift")
@require_role("lead")
@api_doc("X report of the open shift", responses={200: "the report", 404: "no shift is open"})
def api_shift():
    ctx = kit()
    try:
        return jsonify(_with_preview(x_report(ctx.db, ctx.config)))
    except ShiftError as e:
        return jsonify(error=str(e)), 404


@bp.route("/api/v1/pos/shift/open", methods=["POST"])
@require_role("lead")
@api_doc("Open a shift with a float", request={"type": "object", "properties": {"float": {"type": "string"}}})
def api_shift_open():
    ctx = kit()
    try:
        s = open_shift(ctx.db, ctx.ledger, parse_cents(str(_body().get("float") or "0"), what="float"), by=g.role)
    except (ShiftError, MoneyError) as e:
        return _refuse(e)
    return jsonify(s)


@bp.route("/api/v1/pos/shift/cash", methods=["POST"])
@require_role("lead")
@api_doc("Cash in or out of the drawer with a reason", request={"type": "object", "required": ["amount", "reason"],
         "properties": {"amount": {"type": "string"}, "out": {"type": "boolean"}, "reason": {"type": "string"}}})
def api_shift_cash():
    ctx = kit()
    body = _body()
    try:
        cents = parse_cents(str(body.get("amount") or ""), what="cash amount")
        m = cash_move(ctx.db, ctx.ledger, -cents if body.get("out") else cents, str(body.get("reason") or ""), by=g.role)
    except (ShiftError, MoneyError) as e:
        return _refuse(e)
    return jsonify(m)


@bp.route("/api/v1/pos/shift/close", methods=["POST"])
@require_role("lead")
@api_doc("Close the shift with the counted cash → the Z report (stored and printed)", request={
    "type": "object", "properties": {"counted": {"type": "string"},
                                     "denominations": {"type": "object", "description": '{"2000": 3} cents → count'}}},
    responses={200: "the Z report", 400: "bad count or no shift open"})
def api_shift_close():
    ctx = kit()
    body = _body()
    try:
        denoms = None
        raw = body.get("denominations")
        if isinstance(raw, dict) and body.get("counted") in (None, ""):
            denoms = {}
            for k, v in raw.items():
                if not str(k).isdigit():
                    raise ShiftError(f"denomination {k!r} must be whole cents, e.g. 2000")
                if isinstance(v, str) and v.strip().isdigit():
                    v = int(v)
                if v in (None, "", 0):
                    continue
                if not isinstance(v, int) or isinstance(v, bool):
                    raise ShiftError(f"the count of {k} must be a whole number")
                denoms[int(k)] = v
        counted = None
        if denoms is None and body.get("counted") not in (None, ""):
            counted = parse_cents(str(body["counted"]), what="counted cash")
        z = close_shift(ctx.db, ctx.ledger, ctx.config, counted_cents=counted, denominations=denoms, by=g.role)
    except (ShiftError, MoneyError) as e:
        return _refuse(e)
    return jsonify(_with_preview(z))


@bp.route("/api/v1/pos/products")
@require_role("lead")
@api_doc("Every product, including inactive ones, for the lead's catalogue editor")
def api_products():
    from pos.catalogue import sold_by_sku

    conn = kit().db.conn
    sold = sold_by_sku(conn)
    return jsonify(products=[p.as_dict(sold.get(p.sku, 0)) for p in products(conn)])


def blueprint() -> Blueprint:
    """The feature contract (kit/features.py): the app factory registers what this returns."""
    return bp
