"""Ledger: gapless seq across concurrent processes, unique ids, hash chain, HLC that never goes back."""

import json
import subprocess
import sys
import textwrap

import pytest

from kit.clock import HLC_COUNTER_BITS, KitClock, hlc_merge, hlc_next
from kit.ledger import Ledger, canonical_json, events_after, iter_events, verify
from sync.agent import outgoing_events

WRITER = textwrap.dedent("""
    import sys
    from kit.config import load_config
    from kit.service import make_context
    ctx = make_context("writer", load_config())
    for i in range(int(sys.argv[1])):
        with ctx.db.transaction() as conn:
            ctx.ledger.append(conn, "test.write", {"writer": sys.argv[2], "i": i})
""")


def test_two_processes_append_concurrently_and_seq_stays_gapless(kit_env, db):
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, "300", name], env=kit_env["env"]) for name in ("a", "b")]
    for p in procs:
        assert p.wait(60) == 0
    count, problems = verify(db)
    assert problems == []
    assert count == 600
    seqs = [r[0] for r in db.query("SELECT seq FROM events ORDER BY seq")]
    assert seqs == list(range(1, 601))
    per_writer = {}
    for e in events_after(db, 0, 1000):
        per_writer.setdefault(e.payload["writer"], []).append(e.payload["i"])
    assert per_writer == {"a": list(range(300)), "b": list(range(300))}  # each writer's order kept
    hlcs = [r[0] for r in db.query("SELECT hlc FROM events ORDER BY seq")]
    assert hlcs == sorted(hlcs) and len(set(hlcs)) == len(hlcs)


class SettableClock(KitClock):
    now_value = 0.0

    def time(self):
        return self.now_value


def test_hlc_stays_monotonic_when_the_wall_clock_jumps_back(tmp_path, db, config):
    clock = SettableClock(tmp_path, assume_synced=True)
    ledger = Ledger(config.kit_id, clock)
    values = []
    for i, wall in enumerate([2_000_000_000.0, 2_000_000_000.5, 1_900_000_000.0, 1_900_000_000.0, 2_000_000_001.0]):
        clock.now_value = wall
        with db.transaction() as conn:
            values.append(ledger.append(conn, "test.jump", {"i": i}).hlc)
    assert values == sorted(values) and len(set(values)) == 5
    # after the jump back, the physical part holds at the highest time seen and the counter moves
    assert values[2] >> HLC_COUNTER_BITS == values[1] >> HLC_COUNTER_BITS
    assert values[4] >> HLC_COUNTER_BITS == 2_000_000_001_000



def test_hlc_orders_after_a_merged_peer_value_and_after_a_truncated_ledger(tmp_path, db, config):
    """Appends keep no HLC row of their own (the newest event holds it): a peer's later value merged
    into kit_hlc, and events truncated away while the wall clock has gone back, still come before."""
    from kit.ledger import truncate

    clock = SettableClock(tmp_path, assume_synced=True)
    ledger = Ledger(config.kit_id, clock)
    clock.now_value = 2_000_000_000.0
    with db.transaction() as conn:
        first = ledger.append(conn, "test.one", {"i": 1}).hlc
        peer = (2_000_000_030_000 << HLC_COUNTER_BITS) | 5  # 30 s ahead
        merged = ledger.observe(conn, peer)
    with db.transaction() as conn:
        after_peer = ledger.append(conn, "test.two", {"i": 2}).hlc
    assert first < peer < merged < after_peer
    clock.now_value = 2_000_000_100.0
    with db.transaction() as conn:
        newest = ledger.append(conn, "test.three", {"i": 3}).hlc
    last = db.scalar("SELECT MAX(seq) FROM events")
    truncate(db, ledger, last, "test: HQ holds them")
    clock.now_value = 1_900_000_000.0  # the clock then jumps back a long way
    with db.transaction() as conn:
        later = ledger.append(conn, "test.four", {"i": 4}).hlc
    hlcs = [r[0] for r in db.query("SELECT hlc FROM events ORDER BY seq")]
    assert newest < min(hlcs) and later == max(hlcs)

def test_hlc_rules():
    t = 1_700_000_000_000
    a = hlc_next(0, t)
    assert a == t << HLC_COUNTER_BITS
    assert hlc_next(a, t) == a + 1
    assert hlc_next(a, t - 5000) == a + 1
    remote = (t + 10) << HLC_COUNTER_BITS | 7
    assert hlc_merge(a, remote, t) == remote + 1


def test_ledger_refuses_edits_and_deletes(db, ctx):
    with db.transaction() as conn:
        ctx.ledger.append(conn, "test.one", {"x": 1})
    with pytest.raises(Exception, match="append-only"), db.transaction() as conn:
        conn.execute("UPDATE events SET payload = '{}'")
    with pytest.raises(Exception, match="append-only"), db.transaction() as conn:
        conn.execute("DELETE FROM events")


def test_verify_detects_a_tampered_row(db, ctx):
    for i in range(3):
        with db.transaction() as conn:
            ctx.ledger.append(conn, "test.one", {"x": i})
    with db.transaction() as conn:
        conn.execute("DROP TRIGGER events_no_update")
        conn.execute("UPDATE events SET payload = ? WHERE seq = 2", (json.dumps({"x": 99}),))
    count, problems = verify(db)
    assert count == 3
    assert any("seq 2" in p and "hash" in p for p in problems)


def test_append_outside_a_transaction_is_refused(db, ctx):
    with pytest.raises(RuntimeError, match="inside db.transaction"):
        ctx.ledger.append(db.conn, "test.one", {})


def test_clock_correction_from_a_lead_is_kept_as_an_offset(tmp_path):
    clock = KitClock(tmp_path, method="offset")
    assert not clock.status().synced or clock.status().reason.startswith("synchronised")
    import time

    clock.set_time(time.time() + 3600, who="test")
    status = KitClock(tmp_path).status()  # another process reads the same correction
    assert status.synced and "set by a lead" in status.reason
    assert 3599 < status.offset_seconds < 3601


SALE_LIKE = {"lines": [{"name": "T-shirt", "sku": "TS-L", "qty": 1, "unit_cents": 2500, "total_cents": 2500,
                        "discount_reason": "", "line_discount_cents": 0, "tax_bp": 1900, "variant": "L"}] * 6,
             "payments": [{"method": "cash", "amount_cents": 7500, "tendered_cents": 10000, "reference": ""}],
             "receipt": "door1-17", "currency": "EUR", "total_cents": 7500, "discount_reason": "", "by": "merch"}


def test_a_large_payload_is_kept_small_and_read_back_exactly(db, ctx):
    with db.transaction() as conn:
        big = ctx.ledger.append(conn, "pos.sale", SALE_LIKE)
        small = ctx.ledger.append(conn, "test.one", {"x": 1})
    stored = {r["seq"]: r["payload"] for r in db.query("SELECT seq, payload FROM events")}
    text = canonical_json(SALE_LIKE)
    assert isinstance(stored[big.seq], bytes) and len(stored[big.seq]) < len(text.encode()) // 3
    assert stored[small.seq] == '{"x":1}'  # short payloads stay plain text, readable in the sqlite3 shell
    assert [e.payload for e in iter_events(db.conn)] == [SALE_LIKE, {"x": 1}]
    assert verify(db) == (2, [])
    line = outgoing_events(db, 0, 10)[0].line  # what HQ receives is the canonical text, not the stored form
    assert json.loads(line)["payload"] == SALE_LIKE and text in line


def test_rows_written_as_text_before_packing_still_read_and_verify(db, ctx):
    with db.transaction() as conn:
        event = ctx.ledger.append(conn, "pos.sale", SALE_LIKE)
        conn.execute("DROP TRIGGER events_no_update")
        conn.execute("UPDATE events SET payload = ? WHERE seq = ?", (canonical_json(SALE_LIKE), event.seq))
    assert next(iter_events(db.conn)).payload == SALE_LIKE
    assert verify(db) == (1, [])


def test_a_damaged_packed_payload_is_reported_not_raised(db, ctx):
    with db.transaction() as conn:
        event = ctx.ledger.append(conn, "pos.sale", SALE_LIKE)
        conn.execute("DROP TRIGGER events_no_update")
        blob = db.scalar("SELECT payload FROM events WHERE seq = ?", (event.seq,))
        conn.execute("UPDATE events SET payload = ? WHERE seq = ?", (blob[:-9] + b"\xff" * 9, event.seq))
        conn.execute("INSERT INTO events (seq, id, kit, type, payload, hlc, wall_time, clock_synced, hash)"
                     " VALUES (2, 'x', 'k', 't', ?, 1, '', 0, '')", (b"\x07zz",))
    count, problems = verify(db)
    assert count == 2
    assert any("seq 1" in p and "damaged" in p for p in problems)
    assert any("seq 2" in p and "unknown format 07" in p for p in problems)
