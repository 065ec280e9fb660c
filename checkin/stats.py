"""Counts for the door screen and ``GET /api/v1/checkin/stats``: this door plus what peers shared.

Rehearsal scans are left out of every count (they are shown apart); undone admissions do not count.
"""

from __future__ import annotations

import sqlite3
import time

from checkin.validate import DoorRules, colour
from kit.sitelink import peer_cursors

ADMIT_SQL = """
SELECT ticket_key, ticket_type, at, door, ? AS kit, event_id, hlc FROM checkin_scans
 WHERE verdict = 'admit' AND rehearsal = 0 AND undone = 0
UNION ALL
SELECT ticket_key, ticket_type, at, door, origin_kit, event_id, hlc FROM checkin_peer_events p
 WHERE type = 'checkin.scanned' AND verdict = 'admit' AND rehearsal = 0
   AND NOT EXISTS (SELECT 1 FROM checkin_peer_events u WHERE u.undo_of = p.event_id)
"""


def admitted_total(conn: sqlite3.Connection, kit: str) -> int:
    return conn.execute(f"SELECT COUNT(*) FROM ({ADMIT_SQL})", (kit,)).fetchone()[0]


def double_admissions(conn: sqlite3.Connection, rules: DoorRules) -> list[dict]:
    """Tickets admitted more than once (doors that could not see each other); the later one is flagged."""
    rows = conn.execute(
        f"SELECT ticket_key, ticket_type, at, door, kit, event_id, hlc FROM ({ADMIT_SQL}) WHERE ticket_key IN"
        f" (SELECT ticket_key FROM ({ADMIT_SQL}) GROUP BY ticket_key HAVING COUNT(*) > 1) ORDER BY ticket_key, hlc",
        (rules.kit, rules.kit)).fetchall()
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
    expected_rows = conn.execute(
        "SELECT ticket_type, COUNT(*) FROM checkin_tickets WHERE status = 'valid' AND source != 'rehearsal'"
        " GROUP BY ticket_type").fetchall()
    admitted_rows = conn.execute(
        f"SELECT ticket_type, COUNT(DISTINCT ticket_key) FROM ({ADMIT_SQL}) GROUP BY ticket_type", (rules.kit,)).fetchall()
    by_type: dict[str, dict] = {}
    for t, n in expected_rows:
        by_type.setdefault(t or "Ticket", {"type": t or "Ticket", "expected": 0, "in": 0})["expected"] = n
    for t, n in admitted_rows:
        by_type.setdefault(t or "Ticket", {"type": t or "Ticket", "expected": 0, "in": 0})["in"] = n
    start = now - 15 * 60
    arrivals = [0] * 15
    for (at,) in conn.execute(f"SELECT at FROM ({ADMIT_SQL}) WHERE at >= ?", (rules.kit, start)):
        arrivals[min(14, max(0, int((at - start) // 60)))] += 1
    refused = conn.execute(
        "SELECT COUNT(*) FROM checkin_scans WHERE rehearsal = 0 AND admitted = 0 AND verdict != 'exit'").fetchone()[0]
    rehearsal = conn.execute("SELECT COUNT(*) FROM checkin_scans WHERE rehearsal = 1").fetchone()[0]
    exits = conn.execute(
        "SELECT COUNT(*) FROM checkin_scans WHERE rehearsal = 0 AND verdict = 'exit' AND undone = 0").fetchone()[0]
    return {
        "door": rules.door,
        "kit": rules.kit,
        "in": sum(v["in"] for v in by_type.values()),
        "expected": sum(v["expected"] for v in by_type.values()),
        "by_type": sorted(by_type.values(), key=lambda v: v["type"]),
        "arrivals_last_15_min": arrivals,
        "refused": refused,
        "exits": exits,
        "rehearsal_scans": rehearsal,
        "double_admissions": double_admissions(conn, rules),
        "peers": peer_cursors(conn, "checkin"),
    }


def last_scans(conn: sqlite3.Connection, rules: DoorRules, limit: int = 12) -> list[dict]:
    rows = conn.execute(
        "SELECT seq, at, verdict, attention, rehearsal, door, name, ticket_type, order_code, reason, undone, admitted,"
        " source, manual_reason FROM checkin_scans ORDER BY seq DESC LIMIT ?", (limit,)).fetchall()
    return [{**dict(r), "time": rules.clock_text(r["at"]), "colour": colour(r["verdict"], bool(r["attention"]))}
            for r in rows]
