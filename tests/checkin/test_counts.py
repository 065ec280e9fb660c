"""The door's counts (kept by triggers in each scan's transaction) stay exactly what a direct count over
the scans, the peers' events and the guest list says: through admissions, refusals, undo, exits,
rehearsal, hand admissions, peers' admissions and undos, a re-import, and ``ledger rebuild``."""

import json
import uuid

from checkin.counts import read_counts, recount
from checkin.documents import ATTENDEES
from checkin.peers import store_peer_event
from checkin.scans import manual_admit, set_mode, undo_scan
from checkin.stats import stats
from kit.documents import import_document
from kit.features import load_features
from kit.ledger import rebuild, verify
from kit.sitepeer import PeerEvent

GUESTS = (
    "Order code,Attendee name,Product,Secret,E-mail\n"
    "ORD01,Anna Smith,Regular,sec-anna,anna@example.org\n"
    "ORD02,Ben Jones,VIP,sec-ben,ben@example.org\n"
    "ORD03,Cleo Park,Regular,sec-cleo,cleo@example.org\n"
    "ORD04,Dan Berg,Regular,sec-dan,dan@example.org\n"
)

# Written out on purpose (not checkin.counts.ADMIT_SQL): the counters must agree with an independent count.
ADMISSIONS = """
  SELECT ticket_key, ticket_type, at FROM checkin_scans WHERE verdict = 'admit' AND rehearsal = 0 AND undone = 0
  UNION ALL
  SELECT ticket_key, ticket_type, at FROM checkin_peer_events p WHERE type = 'checkin.scanned' AND verdict = 'admit'
     AND rehearsal = 0 AND NOT EXISTS (SELECT 1 FROM checkin_peer_events u WHERE u.undo_of = p.event_id)
"""
DIRECT_IN = f"SELECT ticket_type, COUNT(DISTINCT ticket_key) FROM ({ADMISSIONS}) GROUP BY ticket_type"
DIRECT_MINUTES = f"SELECT CAST(at / 60 AS INTEGER) AS m, COUNT(*) FROM ({ADMISSIONS}) GROUP BY m ORDER BY m"


def direct(conn) -> dict:
    admitted = dict(conn.execute(DIRECT_IN).fetchall())
    expected = dict(conn.execute("SELECT ticket_type, COUNT(*) FROM checkin_tickets WHERE status = 'valid'"
                                 " AND source != 'rehearsal' GROUP BY ticket_type").fetchall())
    by_type = [{"type": t or "Ticket", "expected": expected.get(t, 0), "in": admitted.get(t, 0)}
               for t in sorted(admitted.keys() | expected.keys())]
    one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
    return {
        "in": sum(admitted.values()), "expected": sum(expected.values()), "by_type": by_type,
        "refused": one("SELECT COUNT(*) FROM checkin_scans WHERE rehearsal = 0 AND admitted = 0 AND verdict != 'exit'"),
        "exits": one("SELECT COUNT(*) FROM checkin_scans WHERE rehearsal = 0 AND verdict = 'exit' AND undone = 0"),
        "rehearsal_scans": one("SELECT COUNT(*) FROM checkin_scans WHERE rehearsal = 1"),
        "by_method": {m: 0 for m in ("scan", "second_check", "lead_override")} | dict(conn.execute(
            "SELECT m, COUNT(*) FROM (SELECT method AS m FROM checkin_scans WHERE admitted = 1 AND rehearsal = 0"
            " AND undone = 0 UNION ALL SELECT COALESCE(NULLIF(method, ''), 'scan') FROM checkin_peer_events p"
            " WHERE type = 'checkin.scanned' AND admitted = 1 AND rehearsal = 0 AND NOT EXISTS"
            " (SELECT 1 FROM checkin_peer_events u WHERE u.undo_of = p.event_id)) GROUP BY m").fetchall()),
    }


def assert_exact(door) -> dict:
    conn = door.db.conn
    counts = read_counts(conn)
    assert counts == direct(conn)
    minutes = conn.execute("SELECT minute, n FROM checkin_arrivals WHERE n != 0 ORDER BY minute").fetchall()
    assert [tuple(r) for r in minutes] == [tuple(r) for r in conn.execute(DIRECT_MINUTES)]
    with door.db.transaction() as tx:
        s = stats(tx, door.rules)
    assert {k: s[k] for k in counts} == counts
    return counts


def peer(door, kit: str, seq: int, type_: str = "checkin.scanned", **payload) -> PeerEvent:
    event = PeerEvent("checkin", kit, seq, seq - 1, str(uuid.uuid4()), type_, (int(1.8e12) << 16) + seq,
                      {"door": f"Door {kit}", "at": 1.8e9, **payload})
    with door.db.transaction() as conn:
        store_peer_event(conn, door.rules, event)
    return event


def test_counts_follow_every_way_a_door_changes_and_survive_a_rebuild(door):
    import_document(door.config, door.db, ATTENDEES, GUESTS.encode(), "guests.csv")
    assert assert_exact(door)["expected"] == 4

    admitted = [door.scan(c) for c in ("sec-anna", "sec-ben", door.ticket(seed="SIGNED001"))]
    door.scan("sec-anna")  # already in: refused
    door.scan("junk")  # unknown: refused
    counts = assert_exact(door)
    assert (counts["in"], counts["refused"]) == (3, 2)
    with door.db.transaction() as tx:
        assert sum(stats(tx, door.rules, admitted[0]["at"])["arrivals_last_15_min"]) == 3

    undo_scan(door.db, door.ledger, admitted[1]["seq"], "scanned the wrong phone")
    assert assert_exact(door)["in"] == 2

    exit_scan = door.scan("sec-anna", direction="exit")
    door.scan("sec-anna")  # back in: a re-entry is not a second admission
    assert assert_exact(door)["exits"] == 1
    undo_scan(door.db, door.ledger, exit_scan["seq"], "mistake")
    assert assert_exact(door)["exits"] == 0

    set_mode(door.db, door.ledger, rehearsal=True)
    door.scan("sec-cleo")
    door.scan("sec-cleo")
    set_mode(door.db, door.ledger, rehearsal=False)
    counts = assert_exact(door)
    assert (counts["in"], counts["rehearsal_scans"]) == (2, 2)

    manual_admit(door.db, door.ledger, door.rules, "sec-dan", "phone dead, ID checked")
    assert assert_exact(door)["in"] == 3

    # Peers: an admission, one undone by its door, a rehearsal one, and one of a ticket already in here.
    peer(door, "doorB", 1, ticket_key="sec-cleo", verdict="admit", admitted=True, ticket_type="Regular")
    mistaken = peer(door, "doorB", 2, ticket_key="sec-ben", verdict="admit", admitted=True, ticket_type="VIP")
    peer(door, "doorB", 3, ticket_key="sec-x", verdict="admit", admitted=True, rehearsal=True, ticket_type="VIP")
    assert assert_exact(door)["in"] == 5
    peer(door, "doorB", 4, "checkin.undone", scan_event_id=mistaken.id, ticket_key="sec-ben")
    peer(door, "doorB", 5, ticket_key="sec-dan", verdict="admit", admitted=True, ticket_type="Regular")
    counts = assert_exact(door)
    assert counts["in"] == 4  # sec-dan counted once though two doors admitted it
    with door.db.transaction() as tx:
        doubles = stats(tx, door.rules)["double_admissions"]
    assert [d["ticket_key"] for d in doubles] == ["sec-dan"]

    # A re-import that revokes a ticket moves "expected"; a rebuild replays to the same counts.
    import_document(door.config, door.db, ATTENDEES, GUESTS.replace("ORD04,Dan Berg,Regular,sec-dan",
                                                                    "ORD05,Eve Lee,VIP,sec-eve").encode(), "g2.csv")
    before = assert_exact(door)
    assert before["expected"] == 5
    rebuild(door.db, load_features())
    assert assert_exact(door) == before
    with door.db.transaction() as conn:
        recount(conn)
    assert assert_exact(door) == before
    assert verify(door.db)[1] == []


def test_verdict_event_carries_the_counts_the_door_screen_shows(door):
    from checkin.events import publish_scanned

    import_document(door.config, door.db, ATTENDEES, GUESTS.encode(), "guests.csv")
    message = publish_scanned(None, door.db, door.rules, door.scan("sec-anna"))
    assert message["admitted_total"] == 1 and message["counts"]["in"] == 1 and message["counts"]["expected"] == 4
    assert {t["type"]: (t["in"], t["expected"]) for t in message["counts"]["by_type"]} == {"Regular": (1, 3),
                                                                                           "VIP": (0, 1)}
    refused = publish_scanned(None, door.db, door.rules, door.scan("sec-anna"))
    assert refused["counts"]["refused"] == 1 and refused["counts"]["in"] == 1


def test_an_upgraded_kit_counts_what_it_recorded_before_the_counters_existed(door, tmp_path):
    from kit.db import Database, MigrationSet, apply_migrations
    from kit.features import all_migration_sets

    old = Database(tmp_path / "old.db")
    apply_migrations(old, [MigrationSet("checkin", s.migrations[:2]) if s.name == "checkin" else s
                           for s in all_migration_sets()])
    assert old.scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'checkin_counts'") == 0
    # What the code of that time wrote: its columns only (today's importer and recorder need today's tables).
    with old.transaction() as conn:
        for n, (key, kind) in enumerate((("sec-anna", "Regular"), ("sec-ben", "VIP"), ("sec-cleo", "Regular"),
                                         ("sec-dan", "Regular")), start=1):
            conn.execute("INSERT INTO checkin_tickets (ticket_key, order_code, name, ticket_type) VALUES (?,?,?,?)",
                         (key, f"ORD0{n}", key[4:].title(), kind))
        for seq, (key, kind, verdict, reason) in enumerate((
                ("sec-anna", "Regular", "admit", ""), ("sec-ben", "VIP", "admit", "phone dead, ID checked"),
                ("sec-anna", "Regular", "already_in", ""), ("junk", "", "unknown", "")), start=1):
            conn.execute(
                "INSERT INTO checkin_scans (seq, event_id, hlc, at, ticket_key, verdict, admitted, attention, rehearsal,"
                " door, source, name, ticket_type, order_code, reason, manual_reason) VALUES"
                " (?,?,?,?,?,?,?,0,0,'Door 1','test','',?,'','',?)",
                (seq, f"e{seq}", seq, 1.8e9 + seq, key, verdict, int(verdict == "admit"), kind, reason))
        conn.execute(  # another door's hand admission of that time, its reason in the payload
            "INSERT INTO checkin_peer_events (origin_kit, origin_seq, prev_seq, event_id, type, hlc, at, ticket_key,"
            " verdict, admitted, rehearsal, door, name, ticket_type, undo_of, payload, received_at) VALUES"
            " ('doorB', 1, 0, 'p1', 'checkin.scanned', 9, 1.8e9, 'sec-cleo', 'admit', 1, 0, 'Door 2', '', 'Regular',"
            " '', ?, 1.8e9)", (json.dumps({"verdict": "admit", "manual_reason": "phone dead"}),))
    apply_migrations(old, all_migration_sets())
    counts = read_counts(old.conn)
    assert counts == direct(old.conn) and (counts["in"], counts["refused"], counts["expected"]) == (3, 2, 4)
    # A hand admission from before methods were recorded (here or at a peer) counts as the lead's override.
    assert counts["by_method"] == {"scan": 1, "second_check": 0, "lead_override": 2}
    old.close()
