"""What every pos write shares: the time stamp, receipt numbers, and event + projection together."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from kit.config import Config
from kit.ledger import Event, Ledger
from pos.projection import apply_event


def now_iso(clock) -> str:
    return datetime.fromtimestamp(clock.time(), UTC).isoformat(timespec="milliseconds")


def receipt_prefix(config: Config) -> str:
    return config["pos.receipt_prefix"] or config.kit_id


def next_receipt_number(conn: sqlite3.Connection, prefix: str) -> int:
    """The next number of this prefix. Gapless because it is read and used in the same write transaction."""
    row = conn.execute("SELECT last_n FROM pos_counters WHERE prefix = ?", (prefix,)).fetchone()
    return (row[0] if row else 0) + 1


def record(conn: sqlite3.Connection, ledger: Ledger, type_: str, payload: dict) -> Event:
    """Append the event and project it, inside the caller's transaction."""
    event = ledger.append(conn, type_, payload)
    apply_event(conn, event.as_dict())
    return event
