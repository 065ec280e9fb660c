"""Checkout: a sale request (web, CLI) → one committed sale with a gapless receipt number.

One ``BEGIN IMMEDIATE`` transaction holds everything a sale is: the idempotency check, the receipt
number, the ledger event, the projection rows, the stock and the receipt's print job. A double-tapped
Pay sends the same idempotency key twice and gets the same sale back; the same key with a different
cart is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field

from kit.config import Config
from kit.db import Database
from kit.event_codec import unpack
from kit.ids import time_ordered_uuid
from kit.ledger import Ledger, canonical_json
from pos import drop_members, drops, printqueue, receipts
from pos.catalogue import CatalogueError, check_qty, find_product
from pos.money import MoneyError, check_cents, parse_cents
from pos.pricing import CartItem, CheckoutError, PricedCart, Tender, parse_discount, price_cart, settle
from pos.records import next_receipt_number, now_iso, receipt_prefix, record
from pos.shifts import ensure_open_shift

log = logging.getLogger("fieldkit.pos")
MAX_ITEMS = 200
MAX_KEY = 100


class IdempotencyConflict(CheckoutError):
    """The idempotency key was already used for a different cart or payment."""


@dataclass
class SaleRequest:
    items: list[dict]  # [{"sku", "qty", "discount"?}]
    payments: list[Tender]
    discount: dict | None = None
    idempotency_key: str | None = None
    unlocks: list[str] = field(default_factory=list)  # members-first drop unlocks this buyer brings

    def normalised(self) -> dict:
        out = {"items": self.items, "discount": self.discount, "payments": [vars(t) for t in self.payments]}
        if self.unlocks:
            out["unlocks"] = self.unlocks
        return out

    def request_hash(self) -> str:
        return hashlib.sha256(canonical_json(self.normalised()).encode()).hexdigest()


@dataclass
class SaleResult:
    sale: dict  # the sale document (ledger payload)
    replayed: bool = False
    lines: list[dict] | None = None  # its receipt's print lines, when this call made the sale

    @property
    def receipt(self) -> str:
        return self.sale["receipt"]

    @property
    def change_cents(self) -> int:
        return self.sale["change_cents"]


def _amount(spec: dict, what: str) -> int:
    try:
        if "amount_cents" in spec:
            return check_cents(spec["amount_cents"], what=what)
        if "amount" in spec:
            return parse_cents(spec["amount"], what=what)
    except MoneyError as e:
        raise CheckoutError(str(e)) from None
    raise CheckoutError(f"{what} needs 'amount' (like \"20.00\") or 'amount_cents'")


def parse_sale_request(body: object) -> SaleRequest:
    """Validate a JSON sale request; every problem is a CheckoutError with a clear message."""
    if not isinstance(body, dict):
        raise CheckoutError("the sale must be a JSON object with 'items' and 'payments'")
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise CheckoutError("the cart is empty: 'items' must list at least one product")
    if len(items) > MAX_ITEMS:
        raise CheckoutError(f"a sale may have at most {MAX_ITEMS} lines")
    norm_items = []
    for i, it in enumerate(items, start=1):
        if not isinstance(it, dict) or not isinstance(it.get("sku"), str) or not it["sku"].strip():
            raise CheckoutError(f"item {i}: needs a 'sku'")
        qty = it.get("qty", 1)
        try:
            check_qty(qty)
        except CatalogueError as e:
            raise CheckoutError(f"item {i} ({it['sku'][:64]}): {e}") from None
        d = parse_discount(it.get("discount"), what=f"item {i} discount")
        norm_items.append({"sku": it["sku"].strip()[:64], "qty": qty,
                           "discount": None if d is None else {"kind": d.kind, "value": d.value, "reason": d.reason}})
    d = parse_discount(body.get("discount"), what="cart discount")
    pays = body.get("payments", [])
    if not isinstance(pays, list):
        raise CheckoutError("'payments' must be a list")
    tenders = []
    for i, p in enumerate(pays, start=1):
        if not isinstance(p, dict):
            raise CheckoutError(f"payment {i}: must be an object")
        method = p.get("method")
        if method not in ("cash", "card", "other"):
            raise CheckoutError(f"payment {i}: method must be cash, card or other")
        tenders.append(Tender(method, _amount(p, f"payment {i} amount"), str(p.get("reference", "") or "")[:64],
                              str(p.get("last4", "") or "")))
    key = body.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or not 8 <= len(key) <= MAX_KEY):
        raise CheckoutError(f"idempotency_key must be text of 8 to {MAX_KEY} characters")
    unlocks = body.get("unlocks") or []
    if not isinstance(unlocks, list) or len(unlocks) > drop_members.MAX_UNLOCKS_PER_SALE \
            or not all(isinstance(u, str) and 8 <= len(u) <= 64 for u in unlocks):
        raise CheckoutError("'unlocks' must list the members' drop unlocks this buyer scanned")
    return SaleRequest(norm_items, tenders, None if d is None else {"kind": d.kind, "value": d.value, "reason": d.reason},
                       key, unlocks)


def _discount_of(spec: dict | None):
    from pos.pricing import Discount

    return None if spec is None else Discount(spec["kind"], spec["value"], spec["reason"])


def _existing(conn, key: str, request_hash: str) -> SaleResult | None:
    row = conn.execute("SELECT e.payload FROM pos_sales s JOIN events e ON e.seq = s.seq"
                       " WHERE s.idempotency_key = ?", (key,)).fetchone()
    if row is None:
        return None
    doc = json.loads(unpack(row[0]))
    if doc.get("request_hash") != request_hash:  # read from the sale document: not copied into pos_sales
        raise IdempotencyConflict("this Pay was already used for a different cart or payment "
                                  f"(receipt {doc['receipt']}); start a new sale")
    return SaleResult(doc, replayed=True)


def make_sale(db: Database, ledger: Ledger, config: Config, request: SaleRequest, *, by: str = "merch") -> SaleResult:
    """Commit one sale. Raises CheckoutError (nothing written) or returns the committed sale."""
    request_hash = request.request_hash()
    with db.transaction() as conn:
        if request.idempotency_key:  # looked up once, under the write lock: a replay is rare, a sale is not
            found = _existing(conn, request.idempotency_key, request_hash)
            if found:
                return found
        priced, meta = _price(conn, request, config, ledger.clock.time())
        settlement = settle(priced.total_cents, request.payments)
        oversold = _oversold(conn, priced)
        shift_id = ensure_open_shift(conn, ledger, by)
        prefix = receipt_prefix(config)
        n = next_receipt_number(conn, prefix)
        doc = _sale_document(priced, meta, request_hash, settlement, prefix, n, shift_id, config, ledger, by, oversold,
                             request.idempotency_key)
        record(conn, ledger, "pos.sale", doc)
        for ln in doc["lines"]:
            if ln.get("unlock_ids"):  # a member's unit each: its unlock is spent with it
                for unlock_id in ln["unlock_ids"]:
                    drops.record_sold(conn, ledger, ln["drop_id"], 1, doc["id"], doc["receipt"], unlock_id)
            elif ln.get("drop_id"):
                drops.record_sold(conn, ledger, ln["drop_id"], ln["qty"], doc["id"], doc["receipt"])
        lines = receipts.receipt_lines(doc, config)
        printqueue.enqueue(conn, f"receipt:{doc['receipt']}", "pos", f"Receipt {doc['receipt']}",
                           lines, receipt=doc["receipt"], clock=ledger.clock)
    log.info("event=sale receipt=%s total_cents=%d change_cents=%d lines=%d oversold=%s",
             doc["receipt"], doc["total_cents"], doc["change_cents"], len(doc["lines"]), ",".join(oversold) or "-")
    return SaleResult(doc, lines=lines)


def _price(conn, request: SaleRequest, config: Config, now: float) -> tuple[PricedCart, list[tuple]]:
    """The priced cart, and per priced line its discount spec, the drop it sells from (or None) and the
    members' unlocks it spends.

    A product with an open drop sells at the drop's price for as many units as the drop has left
    (as far as this kit knows); in the drop's members' window, one unit per unspent unlock the buyer
    brings. The rest of the line is priced as usual, on a line of its own.
    """
    cart_items, meta = [], []
    on_drop = drops.selling(conn, now)
    for it in request.items:
        try:
            p = find_product(conn, it["sku"])
        except CatalogueError as e:
            raise CheckoutError(str(e)) from None
        if not p.active:
            raise CheckoutError(f"{p.label} ({p.sku}) is not on sale")
        drop = on_drop.get(p.sku)
        offered = min(it["qty"], drop.left) if drop else 0
        unlocks: list[str] = []
        if drop and drop.phase(now) == "members":
            unlocks = drop_members.usable(conn, drop.drop_id, request.unlocks)[:offered]
            offered = len(unlocks)
        if offered:
            cart_items.append(CartItem(p.sku, p.name, p.variant, offered, drop.price_cents, p.tax_bp, None))
            meta.append((None, drop.drop_id, unlocks))
        if it["qty"] > offered:
            cart_items.append(CartItem(p.sku, p.name, p.variant, it["qty"] - offered, p.price_cents, p.tax_bp,
                                       _discount_of(it["discount"])))
            meta.append((it["discount"], None, []))
    return price_cart(cart_items, _discount_of(request.discount), config["pos.prices_include_tax"]), meta


def quote(db: Database, config: Config, body: object, clock=None) -> dict:
    """What a cart costs (discounts, tax, total) without selling it: the Pay dialog shows this total."""
    if isinstance(body, dict):
        body = {**body, "payments": []}
    priced, _meta = _price(db.conn, parse_sale_request(body), config, time.time() if clock is None else clock.time())
    return {"subtotal_cents": priced.subtotal_cents, "discount_cents": priced.discount_cents,
            "tax_cents": priced.tax_cents, "total_cents": priced.total_cents, "taxes": priced.taxes,
            "prices_include_tax": priced.prices_include_tax}


def _oversold(conn, priced: PricedCart) -> list[str]:
    """SKUs this cart sells past their stock: one query for the cart's SKUs, not one per SKU."""
    wanted: dict[str, int] = {}
    for ln in priced.lines:
        wanted[ln.sku] = wanted.get(ln.sku, 0) + ln.qty
    marks = ",".join("?" * len(wanted))
    left = {r[0]: (r[1], r[2]) for r in conn.execute(
        "SELECT p.sku, p.stock, COALESCE(s.sold, 0) FROM pos_products p LEFT JOIN pos_stock_sold s ON s.sku = p.sku"
        f" WHERE p.sku IN ({marks})", list(wanted))}
    return [sku for sku, qty in wanted.items() if left[sku][0] is not None and left[sku][1] + qty > left[sku][0]]


def _sale_document(priced: PricedCart, meta: list, request_hash: str, settlement, prefix: str, n: int,
                   shift_id: str, config: Config, ledger: Ledger, by: str, oversold: list[str], key: str | None) -> dict:
    lines = []
    for ln in priced.lines:
        spec, drop_id, unlocks = meta[ln.line_no - 1]
        spec = spec or {}
        own = 0
        if spec:
            own = _discount_of(spec).amount_of(ln.gross_cents)
        line = {"line_no": ln.line_no, "sku": ln.sku, "name": ln.name, "variant": ln.variant, "qty": ln.qty,
                "unit_cents": ln.unit_cents, "tax_bp": ln.tax_bp, "gross_cents": ln.gross_cents,
                "line_discount_cents": own, "discount_reason": spec.get("reason", "") if spec else "",
                "discount_cents": ln.discount_cents, "total_cents": ln.total_cents, "tax_cents": ln.tax_cents}
        if drop_id:
            line["drop_id"] = drop_id  # sold from a live drop, at its price
        if unlocks:
            line["unlock_ids"] = unlocks  # members' units: each spends one scanned ticket's unlock
        lines.append(line)
    cart_discount = priced.discount_cents - sum(ln["line_discount_cents"] for ln in lines)
    return {
        "id": time_ordered_uuid(), "kind": "sale", "prefix": prefix, "n": n, "receipt": f"{prefix}-{n}",
        "shift_id": shift_id, "at": now_iso(ledger.clock), "by": by, "currency": config["kit.currency"],
        "idempotency_key": key, "request_hash": request_hash,
        "prices_include_tax": priced.prices_include_tax,
        "subtotal_cents": priced.subtotal_cents, "discount_cents": priced.discount_cents,
        "cart_discount_cents": cart_discount, "discount_reason": priced.discount_reason,
        "tax_cents": priced.tax_cents, "total_cents": priced.total_cents, "taxes": priced.taxes,
        "tendered_cents": settlement.tendered_cents, "change_cents": settlement.change_cents,
        "payments": settlement.payments, "lines": lines, "oversold": oversold,
    }


def sale_view(db: Database, config: Config, sale_id_or_receipt: str) -> dict | None:
    """A sale as the API and the screens show it: the document, its refunds and its paper status."""
    doc = receipts.sale_document(db.conn, sale_id_or_receipt)
    return None if doc is None else document_view(db, config, doc)


def document_view(db: Database, config: Config, doc: dict, lines: list[dict] | None = None, *,
                  just_made: bool = False) -> dict:
    """The view of a document already in hand (a sale just made need not be read back).

    ``just_made``: this request committed it a moment ago, so it has no refunds and its receipt waits.
    """
    conn = db.conn
    refunds = [] if just_made else [json.loads(unpack(r[0])) for r in conn.execute(
        receipts.DOCUMENT_SQL + " WHERE s.original_id = ? ORDER BY s.n", (doc["id"],))]
    original = None
    if doc.get("original_id"):
        original = conn.execute("SELECT receipt FROM pos_sales WHERE id = ?", (doc["original_id"],)).fetchone()[0]
    if lines is None:
        lines = receipts.receipt_lines(doc, config, original)
    return {"sale": doc, "refunds": [{"id": r["id"], "receipt": r["receipt"], "kind": r["kind"],
                                      "total_cents": r["total_cents"], "at": r["at"]} for r in refunds],
            "print": {"status": "queued", "attempts": 0, "error": "", "printed_at": None} if just_made
            else printqueue.receipt_status(conn, doc["receipt"]), "receipt_lines": lines,
            "preview_html": receipts.lines_to_html(lines, qr_url=f"/api/v1/pos/sales/{doc['id']}/qr.svg")}
