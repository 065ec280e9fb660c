"""The door's counts kept up to date by SQLite triggers, in the transaction that changes what they count.

``GET /api/v1/checkin/stats`` and every verdict event read a handful of rows here instead of counting
100,000 tickets and every admission again. Triggers, not Python, keep them: every path that writes a
scan (live, group commit, manual admit, undo, ``ledger rebuild``'s delete-and-replay), a peer's scan
or undo, or a guest-list row (import, rehearsal sheet) updates them in the same statement, so no code
path can forget. What counts is exactly what ``ADMIT_SQL`` below counts: admissions (verdict
``admit``) of this door and its peers, rehearsal left out, undone ones dropped; tickets admitted more
than once counted once per ticket type.

Tables (migration 0003): ``checkin_counts`` (refused, exits, rehearsal_scans), ``checkin_type_counts``
(expected and admitted per ticket type), and two tallies of live admissions, per ticket (its partial
index finds double admissions) and per ticket and type (0 -> 1 and 1 -> 0 move the type's count), and
``checkin_arrivals``: admissions per clock minute for the door's 15-minute chart.
"""

from __future__ import annotations

import sqlite3

COUNT_NAMES = ("refused", "exits", "rehearsal_scans")
ADMIT_SQL = """
SELECT ticket_key, ticket_type, at, door, ? AS kit, event_id, hlc FROM checkin_scans
 WHERE verdict = 'admit' AND rehearsal = 0 AND undone = 0
UNION ALL
SELECT ticket_key, ticket_type, at, door, origin_kit, event_id, hlc FROM checkin_peer_events p
 WHERE type = 'checkin.scanned' AND verdict = 'admit' AND rehearsal = 0
   AND NOT EXISTS (SELECT 1 FROM checkin_peer_events u WHERE u.undo_of = p.event_id)
"""

TABLES = """
CREATE TABLE checkin_counts (name TEXT PRIMARY KEY, n INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE checkin_type_counts (
    ticket_type TEXT PRIMARY KEY,
    expected INTEGER NOT NULL DEFAULT 0,
    admitted INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE checkin_admit_tally (ticket_key TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX checkin_admit_tally_doubles ON checkin_admit_tally(ticket_key) WHERE n > 1;
CREATE TABLE checkin_type_tally (
    ticket_key TEXT NOT NULL,
    ticket_type TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (ticket_key, ticket_type)
) WITHOUT ROWID;
CREATE TABLE checkin_arrivals (minute INTEGER PRIMARY KEY, n INTEGER NOT NULL);  -- admissions per clock minute
-- Inserting (ticket_key, ticket_type, at, +1 or -1) here moves both tallies, the type's count and the minute's.
CREATE VIEW checkin_admission_delta (ticket_key, ticket_type, at, d) AS SELECT '', '', 0.0, 0 WHERE 0;
"""

_DELTA = """
CREATE TRIGGER checkin_admission_delta_apply INSTEAD OF INSERT ON checkin_admission_delta BEGIN
    INSERT INTO checkin_admit_tally (ticket_key, n) VALUES (new.ticket_key, new.d)
        ON CONFLICT (ticket_key) DO UPDATE SET n = n + excluded.n;
    DELETE FROM checkin_admit_tally WHERE ticket_key = new.ticket_key AND n = 0;
    INSERT INTO checkin_type_counts (ticket_type) SELECT new.ticket_type
        WHERE NOT EXISTS (SELECT 1 FROM checkin_type_counts WHERE ticket_type = new.ticket_type);
    UPDATE checkin_type_counts SET admitted = admitted + new.d WHERE ticket_type = new.ticket_type
        AND COALESCE((SELECT n FROM checkin_type_tally WHERE ticket_key = new.ticket_key
                      AND ticket_type = new.ticket_type), 0) = CASE WHEN new.d > 0 THEN 0 ELSE 1 END;
    INSERT INTO checkin_type_tally (ticket_key, ticket_type, n) VALUES (new.ticket_key, new.ticket_type, new.d)
        ON CONFLICT (ticket_key, ticket_type) DO UPDATE SET n = n + excluded.n;
    DELETE FROM checkin_type_tally WHERE ticket_key = new.ticket_key AND ticket_type = new.ticket_type AND n = 0;
    INSERT INTO checkin_arrivals (minute, n) VALUES (CAST(new.at / 60 AS INTEGER), new.d)
        ON CONFLICT (minute) DO UPDATE SET n = n + excluded.n;
END;
"""


def _scan_effects(row: str, sign: str) -> str:
    """Statements that add (sign '+') or take away ('-') what one checkin_scans row counts."""
    d = "1" if sign == "+" else "-1"
    return f"""
    INSERT INTO checkin_admission_delta SELECT {row}.ticket_key, {row}.ticket_type, {row}.at, {d}
        WHERE {row}.verdict = 'admit' AND {row}.rehearsal = 0 AND {row}.undone = 0;
    UPDATE checkin_counts SET n = n {sign} 1 WHERE name = CASE
        WHEN {row}.rehearsal != 0 THEN 'rehearsal_scans'
        WHEN {row}.verdict = 'exit' THEN CASE WHEN {row}.undone = 0 THEN 'exits' END
        WHEN {row}.admitted = 0 THEN 'refused' END;"""


def _peer_effects(row: str, sign: str) -> str:
    """What one checkin_peer_events row adds or takes away: an admission not undone, or an undo that
    is the only one of an admission (a peer undoes only its own scans, but a hostile one might repeat)."""
    d, undo_d = ("1", "-1") if sign == "+" else ("-1", "1")
    return f"""
    INSERT INTO checkin_admission_delta SELECT {row}.ticket_key, {row}.ticket_type, {row}.at, {d}
        WHERE {row}.type = 'checkin.scanned' AND {row}.verdict = 'admit' AND {row}.rehearsal = 0
          AND NOT EXISTS (SELECT 1 FROM checkin_peer_events u WHERE u.undo_of = {row}.event_id);
    INSERT INTO checkin_admission_delta SELECT p.ticket_key, p.ticket_type, p.at, {undo_d} FROM checkin_peer_events p
        WHERE {row}.undo_of != '' AND p.event_id = {row}.undo_of AND p.type = 'checkin.scanned'
          AND p.verdict = 'admit' AND p.rehearsal = 0
          AND NOT EXISTS (SELECT 1 FROM checkin_peer_events u WHERE u.undo_of = {row}.undo_of
                          AND u.rowid != {row}.rowid);"""


def _ticket_effects(row: str, sign: str) -> str:
    d = "1" if sign == "+" else "-1"
    return f"""
    INSERT INTO checkin_type_counts (ticket_type, expected) SELECT {row}.ticket_type, {d}
        WHERE {row}.status = 'valid' AND {row}.source != 'rehearsal'
        ON CONFLICT (ticket_type) DO UPDATE SET expected = expected + excluded.expected;"""


def _triggers(table: str, short: str, effects, update_of: str) -> str:
    return f"""
CREATE TRIGGER checkin_{short}_counts_ins AFTER INSERT ON {table} BEGIN{effects("new", "+")}
END;
CREATE TRIGGER checkin_{short}_counts_del AFTER DELETE ON {table} BEGIN{effects("old", "-")}
END;
CREATE TRIGGER checkin_{short}_counts_upd AFTER UPDATE OF {update_of} ON {table} BEGIN{effects("old", "-")}
{effects("new", "+")}
END;
"""


TRIGGERS = (_DELTA
            + _triggers("checkin_scans", "scan", _scan_effects,
                        "ticket_key, ticket_type, verdict, admitted, rehearsal, undone")
            + _triggers("checkin_tickets", "ticket", _ticket_effects, "ticket_type, status, source"))
# A peer event is never updated; a changed one would need its undo partners recounted, so refuse it.
TRIGGERS += f"""
CREATE TRIGGER checkin_peer_counts_ins AFTER INSERT ON checkin_peer_events BEGIN{_peer_effects("new", "+")}
END;
CREATE TRIGGER checkin_peer_counts_del AFTER DELETE ON checkin_peer_events BEGIN{_peer_effects("old", "-")}
END;
CREATE TRIGGER checkin_peer_counts_upd BEFORE UPDATE OF event_id, type, verdict, rehearsal, ticket_key, ticket_type,
    undo_of ON checkin_peer_events BEGIN
    SELECT RAISE(ABORT, 'peer events are kept as received');
END;
"""


# Admissions by how the guest got in (migration 0005): this door's and its peers', rehearsal and undone left
# out, kept as ``method_<method>`` rows of checkin_counts. Separate triggers, so migration 0003 stays as it ran.
METHODS = ("scan", "second_check", "lead_override")


def _method_effects(row: str, sign: str) -> str:
    d = "1" if sign == "+" else "-1"
    return f"""
    INSERT INTO checkin_counts (name, n) SELECT 'method_' || {row}.method, {d}
        WHERE {row}.admitted = 1 AND {row}.rehearsal = 0 AND {row}.undone = 0
        ON CONFLICT (name) DO UPDATE SET n = n + excluded.n;"""


def _peer_method_effects(row: str, sign: str) -> str:
    d, undo_d = ("1", "-1") if sign == "+" else ("-1", "1")
    return f"""
    INSERT INTO checkin_counts (name, n) SELECT 'method_' || COALESCE(NULLIF({row}.method, ''), 'scan'), {d}
        WHERE {row}.type = 'checkin.scanned' AND {row}.admitted = 1 AND {row}.rehearsal = 0
          AND NOT EXISTS (SELECT 1 FROM checkin_peer_events u WHERE u.undo_of = {row}.event_id)
        ON CONFLICT (name) DO UPDATE SET n = n + excluded.n;
    INSERT INTO checkin_counts (name, n) SELECT 'method_' || COALESCE(NULLIF(p.method, ''), 'scan'), {undo_d}
        FROM checkin_peer_events p
        WHERE {row}.undo_of != '' AND p.event_id = {row}.undo_of AND p.type = 'checkin.scanned'
          AND p.admitted = 1 AND p.rehearsal = 0
          AND NOT EXISTS (SELECT 1 FROM checkin_peer_events u WHERE u.undo_of = {row}.undo_of
                          AND u.rowid != {row}.rowid)
        ON CONFLICT (name) DO UPDATE SET n = n + excluded.n;"""


METHOD_TRIGGERS = f"""
CREATE TRIGGER checkin_scan_method_ins AFTER INSERT ON checkin_scans BEGIN{_method_effects("new", "+")}
END;
CREATE TRIGGER checkin_scan_method_del AFTER DELETE ON checkin_scans BEGIN{_method_effects("old", "-")}
END;
CREATE TRIGGER checkin_scan_method_upd AFTER UPDATE OF admitted, rehearsal, undone, method ON checkin_scans BEGIN
{_method_effects("old", "-")}{_method_effects("new", "+")}
END;
CREATE TRIGGER checkin_peer_method_ins AFTER INSERT ON checkin_peer_events BEGIN{_peer_method_effects("new", "+")}
END;
CREATE TRIGGER checkin_peer_method_del AFTER DELETE ON checkin_peer_events BEGIN{_peer_method_effects("old", "-")}
END;
"""


def recount_methods(conn: sqlite3.Connection) -> None:
    """Fill the per-method admission counts from the scans and peer events (migration 0005; a repair)."""
    conn.execute("DELETE FROM checkin_counts WHERE name LIKE 'method\\_%' ESCAPE '\\'")
    conn.execute(
        "INSERT INTO checkin_counts (name, n) SELECT 'method_' || m, COUNT(*) FROM ("
        " SELECT method AS m FROM checkin_scans WHERE admitted = 1 AND rehearsal = 0 AND undone = 0"
        " UNION ALL SELECT COALESCE(NULLIF(method, ''), 'scan') FROM checkin_peer_events p"
        " WHERE type = 'checkin.scanned' AND admitted = 1 AND rehearsal = 0"
        " AND NOT EXISTS (SELECT 1 FROM checkin_peer_events u WHERE u.undo_of = p.event_id)) GROUP BY m")


def recount(conn: sqlite3.Connection) -> None:
    """Fill the counts from the tables they count (the migration; a repair). Inside a transaction."""
    for table in ("checkin_counts", "checkin_type_counts", "checkin_admit_tally", "checkin_type_tally",
                  "checkin_arrivals"):
        conn.execute(f"DELETE FROM {table}")
    conn.executemany("INSERT INTO checkin_counts (name, n) VALUES (?, 0)", [(n,) for n in COUNT_NAMES])
    conn.execute(
        "UPDATE checkin_counts SET n = (SELECT COUNT(*) FROM checkin_scans WHERE CASE"
        " WHEN rehearsal != 0 THEN 'rehearsal_scans' WHEN verdict = 'exit' THEN CASE WHEN undone = 0 THEN 'exits' END"
        " WHEN admitted = 0 THEN 'refused' END = checkin_counts.name)")
    kit = ""  # the kit column of ADMIT_SQL is not counted
    conn.execute(f"INSERT INTO checkin_admit_tally (ticket_key, n) SELECT ticket_key, COUNT(*) FROM ({ADMIT_SQL})"
                 " GROUP BY ticket_key", (kit,))
    conn.execute(f"INSERT INTO checkin_type_tally (ticket_key, ticket_type, n) SELECT ticket_key, ticket_type, COUNT(*)"
                 f" FROM ({ADMIT_SQL}) GROUP BY ticket_key, ticket_type", (kit,))
    conn.execute(f"INSERT INTO checkin_arrivals (minute, n) SELECT CAST(at / 60 AS INTEGER), COUNT(*) FROM ({ADMIT_SQL})"
                 " WHERE true GROUP BY 1", (kit,))
    conn.execute("INSERT INTO checkin_type_counts (ticket_type, expected) SELECT ticket_type, COUNT(*)"
                 " FROM checkin_tickets WHERE status = 'valid' AND source != 'rehearsal' GROUP BY ticket_type")
    conn.execute("INSERT INTO checkin_type_counts (ticket_type, admitted) SELECT ticket_type, COUNT(*)"
                 " FROM checkin_type_tally WHERE true GROUP BY ticket_type"
                 " ON CONFLICT (ticket_type) DO UPDATE SET admitted = excluded.admitted")
    if any(r[1] == "method" for r in conn.execute("PRAGMA table_info(checkin_scans)")):  # after migration 0005
        recount_methods(conn)


def read_counts(conn: sqlite3.Connection) -> dict:
    """The door's counts in a few row reads: in / expected, per type, refused, exits, rehearsal scans."""
    by_type: dict[str, dict] = {}
    for t, expected, admitted in conn.execute(
            "SELECT ticket_type, expected, admitted FROM checkin_type_counts WHERE expected > 0 OR admitted > 0"):
        entry = by_type.setdefault(t or "Ticket", {"type": t or "Ticket", "expected": 0, "in": 0})
        entry["expected"] += expected
        entry["in"] += admitted
    named = dict(conn.execute("SELECT name, n FROM checkin_counts").fetchall())
    return {
        "in": sum(v["in"] for v in by_type.values()),
        "expected": sum(v["expected"] for v in by_type.values()),
        "by_type": sorted(by_type.values(), key=lambda v: v["type"]),
        **{name: named.get(name, 0) for name in COUNT_NAMES},
        "by_method": {m: named.get(f"method_{m}", 0) for m in METHODS},
    }


def arrivals(conn: sqlite3.Connection, now: float, minutes: int = 15) -> list[int]:
    """Admissions per clock minute, the last ``minutes`` of them ending with the current one."""
    last = int(now // 60)
    counts = [0] * minutes
    for minute, n in conn.execute("SELECT minute, n FROM checkin_arrivals WHERE minute > ? AND minute <= ?",
                                  (last - minutes, last)):
        counts[minute - last + minutes - 1] = n
    return counts


def doubled_tickets(conn: sqlite3.Connection) -> list[str]:
    """Tickets admitted more than once and not undone (by the tally's partial index)."""
    return [r[0] for r in conn.execute("SELECT ticket_key FROM checkin_admit_tally WHERE n > 1")]
