"""Counts for the door screen and ``GET /api/v1/checkin/stats``: this door plus what peers shared.

Rehearsal scans are left out of every count (they are shown apart); undone admissions do not count.
"""

from __future__ import annotations

import sqlite3
import time

from checkin.counts import ADMIT_SQL, arrivals, doubled_tickets, read_counts
from checkin.validate import DoorRules, colour
from kit.sitelink import peer_cursors


def double_admissions(conn: sqlite3.Connection, rules: DoorRules) -> list[dict]:
    """Tickets admitted more than once (doors that could not see each other); the later one is flagged."""
    keys = doubled_tickets(conn)
    if not keys:
        return []
    marks = ",".join("?" * len(keys))
    rows = conn.execute(
        f"SELECT ticket_key, ticket_type, at, door, kit, event_id, hlc FROM ({ADMIT_SQL}) WHERE ticket_key IN"
        f" ({marks}) ORDER BY ticket_key, hlc", (rules.kit, *keys)).fetchall()
    out: list[dict] = []
    first: dict[str, sqlite3.Row] = {}
    for r in rows:
        if r["ticket_key"] not in first:
            first[r["ticket_key"]] = r
            continue
        f = first[r["ticket_key"]]
        name = conn.execute("SELECT name FROM checkin_tickets WHERE ticket_key = ?", (r["ticket_key"],)).fetchone()
        out.append({
            "ticket_key": r["ticket_key"], "name": name[0] if name else "", "ticket_type": r["ticket_type"],
            "first": {"door": f["door"], "kit": f["kit"], "at": f["at"], "time": rules.clock_text(f["at"])},
            "second": {"door": r["door"], "kit": r["kit"], "at": r["at"], "time": rules.clock_text(r["at"]),
                       "event_id": r["event_id"]},
        })
    return out


def stats(conn: sqlite3.Connection, rules: DoorRules, now: float | None = None) -> dict:
    now = time.time() if now is None else now
    return {
        "door": rules.door,
        "kit": rules.kit,
        **read_counts(conn),
        "arrivals_last_15_min": arrivals(conn, now),
        "double_admissions": double_admissions(conn, rules),
        "peers": peer_cursors(conn, "checkin"),
    }


def last_scans(conn: sqlite3.Connection, rules: DoorRules, limit: int = 12) -> list[dict]:
    # The name is joined from the list at display time: a scan's ledger event holds none (older ones may).
    rows = conn.execute(
        "SELECT s.seq, s.at, s.verdict, s.attention, s.rehearsal, s.door, COALESCE(NULLIF(t.name, ''), s.name) AS name,"
        " s.ticket_type, s.order_code, s.reason, s.undone, s.admitted, s.source, s.manual_reason, s.method"
        " FROM (SELECT * FROM checkin_scans ORDER BY seq DESC LIMIT ?) s"
        " LEFT JOIN checkin_tickets t ON t.ticket_key = s.ticket_key ORDER BY s.seq DESC", (limit,)).fetchall()
    return [{**dict(r), "time": rules.clock_text(r["at"]), "colour": colour(r["verdict"], bool(r["attention"]))}
            for r in rows]
