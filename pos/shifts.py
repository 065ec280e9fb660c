"""Shifts: open with a float, cash in and out, X report any time, close with the counted cash → Z report.

A sale made while no shift is open opens one by itself (float 0, marked automatic) so every sale
belongs to a shift and shows up in a Z report.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid

from kit.config import Config
from kit.db import Database
from kit.ledger import Ledger
from pos import printqueue, reports
from pos.money import MoneyError, check_cents, format_cents
from pos.records import now_iso, record

log = logging.getLogger("fieldkit.pos")


class ShiftError(Exception):
    """The shift cannot do what was asked (none open, already open, bad count)."""


def open_shift_row(conn: sqlite3.Connection) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM pos_shifts WHERE closed_at IS NULL").fetchone()


def _open(conn: sqlite3.Connection, ledger: Ledger, float_cents: int, by: str, auto: bool) -> dict:
    number = conn.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM pos_shifts").fetchone()[0]
    payload = {"id": str(uuid.uuid4()), "number": number, "at": now_iso(ledger.clock), "float_cents": float_cents,
               "by": by, "auto": auto}
    record(conn, ledger, "pos.shift_opened", payload)
    log.info("event=shift_opened number=%d float_cents=%d auto=%s", number, float_cents, auto)
    return payload


def ensure_open_shift(conn: sqlite3.Connection, ledger: Ledger, by: str) -> str:
    row = open_shift_row(conn)
    return row["id"] if row else _open(conn, ledger, 0, by, auto=True)["id"]


def open_shift(db: Database, ledger: Ledger, float_cents: int, by: str = "lead") -> dict:
    try:
        check_cents(float_cents, what="float")
    except MoneyError as e:
        raise ShiftError(str(e)) from None
    with db.transaction() as conn:
        row = open_shift_row(conn)
        if row is not None:
            raise ShiftError(f"shift {row['number']} is already open (since {row['opened_at']}); close it first")
        return _open(conn, ledger, float_cents, by, auto=False)


def cash_move(db: Database, ledger: Ledger, amount_cents: int, reason: str, by: str = "lead") -> dict:
    """Cash put into (positive) or taken out of (negative) the drawer, with a reason."""
    try:
        check_cents(amount_cents, what="cash amount", allow_negative=True)
    except MoneyError as e:
        raise ShiftError(str(e)) from None
    if amount_cents == 0:
        raise ShiftError("a cash movement of 0.00 changes nothing")
    if not reason.strip():
        raise ShiftError("cash in or out needs a reason (e.g. change from the bank, safe drop)")
    with db.transaction() as conn:
        shift_id = ensure_open_shift(conn, ledger, by)
        if amount_cents < 0:
            expected = reports.expected_cash(conn, shift_id)
            if -amount_cents > expected:
                raise ShiftError(f"cannot take out {format_cents(-amount_cents)}: the drawer should hold {format_cents(expected)}")
        payload = {"id": str(uuid.uuid4()), "shift_id": shift_id, "at": now_iso(ledger.clock),
                   "amount_cents": amount_cents, "reason": reason.strip()[:120], "by": by}
        record(conn, ledger, "pos.cash_moved", payload)
    log.info("event=cash_moved amount_cents=%d reason=%r", amount_cents, reason)
    return payload


def parse_count(denominations: dict[int, int], allowed: list[int]) -> int:
    total = 0
    for denom, count in denominations.items():
        if denom not in allowed:
            raise ShiftError(f"{format_cents(denom)} is not one of the denominations {', '.join(format_cents(a) for a in allowed)}")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0 or count > 100_000:
            raise ShiftError(f"the count of {format_cents(denom)} must be a whole number from 0 to 100000")
        total += denom * count
    return total


def close_shift(db: Database, ledger: Ledger, config: Config, *, counted_cents: int | None = None,
                denominations: dict[int, int] | None = None, by: str = "lead") -> dict:
    """Close the open shift with the counted cash (a total or per denomination) → the stored Z report."""
    if (counted_cents is None) == (denominations is None):
        raise ShiftError("give the counted cash either as a total or per denomination")
    if denominations is not None:
        counted_cents = parse_count(denominations, list(config["pos.denominations"]))
    try:
        check_cents(counted_cents, what="counted cash")
    except MoneyError as e:
        raise ShiftError(str(e)) from None
    with db.transaction() as conn:
        row = open_shift_row(conn)
        if row is None:
            raise ShiftError("no shift is open")
        report = reports.shift_report(conn, row["id"], config)
        expected = report["cash"]["expected_cents"]
        at = now_iso(ledger.clock)
        report.update(kind="Z", closed_at=at, closed_by=by, counted_cents=counted_cents,
                      difference_cents=counted_cents - expected,
                      counted_detail={str(k): v for k, v in sorted((denominations or {}).items(), reverse=True)})
        payload = {"id": row["id"], "at": at, "by": by, "counted_cents": counted_cents,
                   "counted_detail": report["counted_detail"], "expected_cash_cents": expected,
                   "difference_cents": counted_cents - expected, "report": report}
        record(conn, ledger, "pos.shift_closed", payload)
        printqueue.enqueue(conn, f"z:{row['id']}", "pos", f"Z report shift {row['number']}",
                           reports.report_document(report, config), clock=ledger.clock)
    log.info("event=shift_closed number=%d expected_cents=%d counted_cents=%d difference_cents=%d",
             row["number"], expected, counted_cents, counted_cents - expected)
    return report


def x_report(db: Database, config: Config) -> dict:
    row = open_shift_row(db.conn)
    if row is None:
        raise ShiftError("no shift is open")
    report = reports.shift_report(db.conn, row["id"], config)
    report["kind"] = "X"
    return report


def last_closed(db: Database) -> dict | None:
    import json

    row = db.query_one("SELECT z_report FROM pos_shifts WHERE closed_at IS NOT NULL ORDER BY number DESC LIMIT 1")
    return json.loads(row[0]) if row else None
