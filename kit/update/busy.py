"""Is the kit in use? Read from the ledger by event type (the core imports no feature).

Doors open: an admission outside rehearsal in the last ``update.busy_admission_minutes``.
Selling: an open shift (opened, not closed) with a sale in the last ``update.busy_sale_minutes``.
"""

from __future__ import annotations

import json
import time
from datetime import datetime

from kit.event_codec import unpack

SCAN, SALE, OPENED, CLOSED = "checkin.scanned", "pos.sale", "pos.shift_opened", "pos.shift_closed"


def _when(payload: dict, wall_time: str) -> float:
    at = payload.get("at")
    if isinstance(at, int | float) and not isinstance(at, bool):
        return float(at)
    try:
        return datetime.fromisoformat(wall_time).timestamp()
    except ValueError:
        return 0.0


def _recent(conn, types: tuple[str, ...], limit: int = 200):
    marks = ",".join("?" * len(types))
    for row in conn.execute(
        f"SELECT type, payload, wall_time FROM events WHERE type IN ({marks}) ORDER BY seq DESC LIMIT ?",
        (*types, limit),
    ):
        try:
            payload = json.loads(unpack(row[1]))
        except ValueError:
            continue
        if isinstance(payload, dict):
            yield row[0], payload, _when(payload, row[2])


def busy_reason(conn, config, now: float | None = None) -> str | None:
    """Why the kit is busy, in a lead's words, or None when an update may go ahead."""
    now = time.time() if now is None else now
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'events'").fetchone():
        return None
    window = config["update.busy_admission_minutes"] * 60
    for _type, p, at in _recent(conn, (SCAN,)):
        if now - at > window:
            break
        if p.get("admitted") and not p.get("rehearsal"):
            return f"the doors are open (last admission {int((now - at) // 60)} min ago)"
    shift_open = False
    for type_, _p, _at in _recent(conn, (OPENED, CLOSED), limit=1):
        shift_open = type_ == OPENED
    if shift_open:
        window = config["update.busy_sale_minutes"] * 60
        for _type, _p, at in _recent(conn, (SALE,), limit=1):
            if now - at <= window:
                return f"the merch table is selling (last sale {int((now - at) // 60)} min ago)"
    return None
