"""Voids and refunds: new documents that reference the original sale; a sale is never edited.

A refund takes back some units of some lines (stock returns) or, for goodwill, an amount without
goods. Amounts are shared so that refunding every unit, in any number of steps, gives back exactly
what was paid, tax included. A void takes back the whole sale and is only possible before any refund.
"""

from __future__ import annotations

import json
import logging

from kit.config import Config
from kit.db import Database
from kit.event_codec import unpack
from kit.ids import time_ordered_uuid
from kit.ledger import Ledger
from pos import printqueue, receipts
from pos.money import MoneyError, check_cents, format_cents, split_proportionally
from pos.pricing import CheckoutError
from pos.records import next_receipt_number, now_iso, receipt_prefix, record
from pos.shifts import ensure_open_shift

log = logging.getLogger("fieldkit.pos")


class RefundError(CheckoutError):
    """The refund cannot be made as asked (too much, unknown sale, no reason)."""


def _cumulative(total: int, qty: int, k: int) -> int:
    """What the first ``k`` of ``qty`` units of a line paid: floor share, so all units add up to ``total``."""
    return total * k // qty


def _already(conn, sale_id: str) -> tuple[dict[int, int], dict[int, int], dict[int, int], int]:
    qty: dict[int, int] = {}
    amount: dict[int, int] = {}
    tax: dict[int, int] = {}
    for r in conn.execute("SELECT l.original_line_no, l.qty, l.total_cents, l.tax_cents FROM pos_sale_lines l"
                          " JOIN pos_sales s ON s.id = l.sale_id WHERE s.original_id = ?", (sale_id,)):
        qty[r[0]] = qty.get(r[0], 0) + r[1]
        amount[r[0]] = amount.get(r[0], 0) + r[2]
        tax[r[0]] = tax.get(r[0], 0) + r[3]
    total = conn.execute("SELECT COALESCE(SUM(total_cents), 0) FROM pos_sales WHERE original_id = ?", (sale_id,)).fetchone()[0]
    return qty, amount, tax, total


def refund(db: Database, ledger: Ledger, config: Config, sale: str, *, reason: str,
           items: list[dict] | None = None, amount_cents: int | None = None, void: bool = False,
           method: str | None = None, reference: str = "", by: str = "lead",
           idempotency_key: str | None = None) -> dict:
    """Refund ``items`` ([{"line": n, "qty": q}]), an ``amount_cents``, everything left (neither), or void."""
    if not reason or not reason.strip():
        raise RefundError("a refund or void needs a reason (e.g. wrong size, damaged)")
    if items is not None and amount_cents is not None:
        raise RefundError("refund either items or an amount, not both")
    if items is not None and not isinstance(items, list):
        raise RefundError("items must be a list like [{\"line\": 1, \"qty\": 1}]")
    if idempotency_key is not None and (not isinstance(idempotency_key, str) or not 8 <= len(idempotency_key) <= 100):
        raise RefundError("idempotency_key must be text of 8 to 100 characters")
    with db.transaction() as conn:
        if idempotency_key:
            row = conn.execute(receipts.DOCUMENT_SQL + " WHERE s.idempotency_key = ?", (idempotency_key,)).fetchone()
            if row:
                return json.loads(unpack(row[0]))
        orig = receipts.sale_document(conn, sale)
        if orig is None:
            raise RefundError(f"no sale {sale!r} on this kit")
        if orig["kind"] != "sale":
            raise RefundError(f"{orig['receipt']} is itself a {orig['kind']}; refund the original sale")
        done_qty, done_amount, done_tax, done_total = _already(conn, orig["id"])
        if void and done_total:
            raise RefundError(f"{orig['receipt']} already has refunds; refund what is left instead of voiding")
        left_total = orig["total_cents"] - done_total
        if left_total <= 0:
            raise RefundError(f"{orig['receipt']} has already been refunded in full")
        lines = _lines_for_items(orig, items, done_qty, done_amount, done_tax) if amount_cents is None \
            else _lines_for_amount(orig, amount_cents, done_amount, done_tax, left_total)
        total = sum(ln["total_cents"] for ln in lines)
        if not orig.get("prices_include_tax", True):
            total += sum(ln["tax_cents"] for ln in lines)
        if total > left_total:
            raise RefundError(f"refund of {format_cents(total)} is more than the {format_cents(left_total)} left on {orig['receipt']}")
        pay_method = method or _main_method(orig)
        if pay_method not in ("cash", "card", "other"):
            raise RefundError("refund method must be cash, card or other")
        shift_id = ensure_open_shift(conn, ledger, by)
        prefix = receipt_prefix(config)
        n = next_receipt_number(conn, prefix)
        taxes: dict[int, dict] = {}
        for ln in lines:
            t = taxes.setdefault(ln["tax_bp"], {"tax_bp": ln["tax_bp"], "tax_cents": 0, "gross_cents": 0, "net_cents": 0})
            t["tax_cents"] += ln["tax_cents"]
            gross = ln["total_cents"] + (0 if orig.get("prices_include_tax", True) else ln["tax_cents"])
            t["gross_cents"] += gross
            t["net_cents"] += gross - ln["tax_cents"]
        doc = {
            "id": time_ordered_uuid(), "kind": "void" if void else "refund", "original_id": orig["id"],
            "original_receipt": orig["receipt"], "prefix": prefix, "n": n, "receipt": f"{prefix}-{n}",
            "shift_id": shift_id, "at": now_iso(ledger.clock), "by": by, "reason": reason.strip()[:120],
            "currency": orig["currency"], "prices_include_tax": orig.get("prices_include_tax", True),
            "subtotal_cents": total, "discount_cents": 0, "cart_discount_cents": 0,
            "tax_cents": sum(ln["tax_cents"] for ln in lines), "total_cents": total,
            "taxes": sorted(taxes.values(), key=lambda t: t["tax_bp"]), "change_cents": 0, "tendered_cents": total,
            "payments": [{"method": pay_method, "amount_cents": total, "tendered_cents": total,
                          "reference": reference[:64], "last4": ""}],
            "lines": lines, "idempotency_key": idempotency_key, "request_hash": None, "oversold": [],
        }
        record(conn, ledger, "pos.refund", doc)
        printqueue.enqueue(conn, f"receipt:{doc['receipt']}", "pos", f"{doc['kind'].title()} {doc['receipt']}",
                           receipts.receipt_lines(doc, config, orig["receipt"]), receipt=doc["receipt"], clock=ledger.clock)
    log.info("event=%s receipt=%s original=%s total_cents=%d method=%s reason=%r", doc["kind"], doc["receipt"],
             orig["receipt"], total, pay_method, reason)
    return doc


def _main_method(orig: dict) -> str:
    pays = sorted(orig["payments"], key=lambda p: -p["amount_cents"])
    return pays[0]["method"] if pays else "cash"


def _lines_for_items(orig: dict, items: list[dict] | None, done_qty, done_amount, done_tax) -> list[dict]:
    by_no = {ln["line_no"]: ln for ln in orig["lines"]}
    if items is None:  # everything that is left
        items = [{"line": no, "qty": ln["qty"] - done_qty.get(no, 0)} for no, ln in by_no.items()
                 if ln["qty"] - done_qty.get(no, 0) > 0]
    if not items:
        raise RefundError("nothing to refund")
    out = []
    for i, it in enumerate(items, start=1):
        if not isinstance(it, dict):
            raise RefundError(f"refund item {i}: must be an object with 'line' (or 'sku') and 'qty'")
        ln = by_no.get(it.get("line")) if "line" in it else next(
            (x for x in orig["lines"] if x["sku"] == it.get("sku") and x["qty"] > done_qty.get(x["line_no"], 0)), None)
        if ln is None:
            raise RefundError(f"refund item {i}: no such line on {orig['receipt']}")
        q = it.get("qty", 1)
        if not isinstance(q, int) or isinstance(q, bool) or q <= 0:
            raise RefundError(f"refund item {i}: quantity must be a whole number of at least 1")
        before = done_qty.get(ln["line_no"], 0)
        if before + q > ln["qty"]:
            raise RefundError(f"cannot refund {q} x {ln['name']} {ln['variant']}".rstrip()
                              + f": {ln['qty'] - before} of {ln['qty']} left to refund")
        amount = _cumulative(ln["total_cents"], ln["qty"], before + q) - _cumulative(ln["total_cents"], ln["qty"], before)
        tax = _cumulative(ln["tax_cents"], ln["qty"], before + q) - _cumulative(ln["tax_cents"], ln["qty"], before)
        done_qty[ln["line_no"]] = before + q
        out.append({"line_no": len(out) + 1, "original_line_no": ln["line_no"], "sku": ln["sku"], "name": ln["name"],
                    "variant": ln["variant"], "qty": q, "unit_cents": ln["unit_cents"], "tax_bp": ln["tax_bp"],
                    "gross_cents": amount, "line_discount_cents": 0, "discount_reason": "",
                    "discount_cents": 0, "total_cents": amount, "tax_cents": tax, "moves_stock": True})
    return out


def _lines_for_amount(orig: dict, amount_cents: int, done_amount, done_tax, left_total: int) -> list[dict]:
    try:
        check_cents(amount_cents, what="refund amount")
    except MoneyError as e:
        raise RefundError(str(e)) from None
    if amount_cents <= 0:
        raise RefundError("a refund amount must be more than 0.00")
    if amount_cents > left_total:
        raise RefundError(f"refund of {format_cents(amount_cents)} is more than the {format_cents(left_total)} "
                          f"left on {orig['receipt']}")
    exclusive = not orig.get("prices_include_tax", True)
    left = {ln["line_no"]: ln["total_cents"] + (ln["tax_cents"] if exclusive else 0)
            - done_amount.get(ln["line_no"], 0) - (done_tax.get(ln["line_no"], 0) if exclusive else 0)
            for ln in orig["lines"]}
    shares = split_proportionally(amount_cents, [max(left[ln["line_no"]], 0) for ln in orig["lines"]])
    out = []
    for ln, share in zip(orig["lines"], shares, strict=True):
        if not share:
            continue
        full = ln["total_cents"] + (ln["tax_cents"] if exclusive else 0)
        tax = ln["tax_cents"] * share // full if full else 0
        total = share - tax if exclusive else share
        out.append({"line_no": len(out) + 1, "original_line_no": ln["line_no"], "sku": ln["sku"], "name": ln["name"],
                    "variant": ln["variant"], "qty": 0, "unit_cents": 0, "tax_bp": ln["tax_bp"], "gross_cents": total,
                    "line_discount_cents": 0, "discount_reason": "", "discount_cents": 0, "total_cents": total,
                    "tax_cents": tax, "moves_stock": False})
    return out
