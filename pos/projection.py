"""Ledger events → the pos projection tables. The only code that writes them.

Domain functions build an event payload, append it to the ledger and hand the same event to
``apply_event`` inside one transaction; ``fieldkit ledger rebuild`` replays the ledger through the
very same function, so a rebuild reproduces the tables exactly.
"""

from __future__ import annotations

import json
import logging
import sqlite3

from pos.drops import apply_event as apply_drop

log = logging.getLogger("fieldkit.pos")


def apply_event(conn: sqlite3.Connection, event: dict) -> None:
    handler = HANDLERS.get(event["type"])
    if handler is None:
        log.warning("event=unknown_pos_event type=%s seq=%s", event["type"], event.get("seq"))
        return
    handler(conn, event["payload"], event["seq"])
    if event["type"].startswith("pos.drop_"):
        apply_drop(conn, event)


def _sale(conn: sqlite3.Connection, p: dict, seq: int) -> None:
    # request_hash stays NULL: the idempotency check reads it from the document (64 bytes a sale saved)
    conn.execute(
        "INSERT INTO pos_counters (prefix, last_n) VALUES (?, ?)"
        " ON CONFLICT(prefix) DO UPDATE SET last_n = MAX(last_n, excluded.last_n)", (p["prefix"], p["n"]))
    conn.execute(
        "INSERT INTO pos_sales (id, receipt, n, kind, original_id, shift_id, at, idempotency_key, request_hash, currency,"
        " subtotal_cents, discount_cents, tax_cents, total_cents, change_cents, reason, by_role, oversold, seq)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (p["id"], p["receipt"], p["n"], p["kind"], p.get("original_id"), p["shift_id"], p["at"], p.get("idempotency_key"),
         None, p["currency"], p["subtotal_cents"], p["discount_cents"], p["tax_cents"], p["total_cents"],
         p.get("change_cents", 0), p.get("reason", ""), p.get("by", ""), ",".join(p.get("oversold", [])), seq))
    sign = 1 if p["kind"] == "sale" else -1
    conn.executemany(
        "INSERT INTO pos_sale_lines (sale_id, line_no, original_line_no, sku, name, variant, qty, unit_cents, tax_bp,"
        " discount_cents, total_cents, tax_cents) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        [(p["id"], ln["line_no"], ln.get("original_line_no"), ln["sku"], ln["name"], ln["variant"], ln["qty"],
          ln["unit_cents"], ln["tax_bp"], ln["discount_cents"], ln["total_cents"], ln["tax_cents"]) for ln in p["lines"]])
    stock_moves = [(ln["sku"], sign * ln["qty"]) for ln in p["lines"] if ln.get("moves_stock", True) and ln["qty"]]
    conn.executemany(
        "INSERT INTO pos_stock_sold (sku, sold) VALUES (?, ?) ON CONFLICT(sku) DO UPDATE SET sold = sold + excluded.sold",
        stock_moves)
    conn.executemany(
        "INSERT INTO pos_payments (sale_id, idx, method, amount_cents, tendered_cents, reference, last4)"
        " VALUES (?,?,?,?,?,?,?)",
        [(p["id"], i, pay["method"], pay["amount_cents"], pay["tendered_cents"], pay.get("reference", ""),
          pay.get("last4", "")) for i, pay in enumerate(p["payments"])])


def _shift_opened(conn: sqlite3.Connection, p: dict, seq: int) -> None:
    conn.execute(
        "INSERT INTO pos_shifts (id, number, opened_at, opened_by, float_cents, auto_opened) VALUES (?,?,?,?,?,?)",
        (p["id"], p["number"], p["at"], p.get("by", ""), p["float_cents"], int(p.get("auto", False))))


def _shift_closed(conn: sqlite3.Connection, p: dict, seq: int) -> None:
    conn.execute(
        "UPDATE pos_shifts SET closed_at=?, closed_by=?, counted_cents=?, counted_detail=?, expected_cash_cents=?,"
        " difference_cents=?, z_report=? WHERE id=?",
        (p["at"], p.get("by", ""), p["counted_cents"], json.dumps(p.get("counted_detail") or {}, sort_keys=True),
         p["expected_cash_cents"], p["difference_cents"], json.dumps(p["report"], sort_keys=True, separators=(",", ":")),
         p["id"]))


def _cash_moved(conn: sqlite3.Connection, p: dict, seq: int) -> None:
    conn.execute("INSERT INTO pos_cash_moves (id, shift_id, at, amount_cents, reason, by_role) VALUES (?,?,?,?,?,?)",
                 (p["id"], p["shift_id"], p["at"], p["amount_cents"], p["reason"], p.get("by", "")))


def _pickup_collected(conn: sqlite3.Connection, p: dict, seq: int) -> None:
    conn.execute("INSERT INTO pos_pickups_collected (code, at, by_role, items) VALUES (?,?,?,?)",
                 (p["code"], p["at"], p.get("by", ""), json.dumps(p["items"], sort_keys=True)))


def _audit_only(conn: sqlite3.Connection, p: dict, seq: int) -> None:
    """Events kept for the audit trail whose state lives in reference tables (catalogue edits)."""


def _drop_event(conn: sqlite3.Connection, p: dict, seq: int) -> None:
    """Drop events are kept whole in pos_drop_events by pos.drops.apply_event (it needs the event's id)."""


HANDLERS = {
    "pos.sale": _sale,
    "pos.refund": _sale,
    "pos.shift_opened": _shift_opened,
    "pos.shift_closed": _shift_closed,
    "pos.cash_moved": _cash_moved,
    "pos.pickup_collected": _pickup_collected,
    "pos.product_edited": _audit_only,
    "pos.drop_started": _drop_event,
    "pos.drop_stopped": _drop_event,
    "pos.drop_sold": _drop_event,
    "pos.drop_unlocked": _drop_event,
}
