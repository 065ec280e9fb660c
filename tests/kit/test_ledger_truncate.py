"""Ledger truncation: events HQ holds leave the kit, a checkpoint keeps `ledger verify` meaningful, sync
carries on, and a rebuild refuses plainly instead of making tables that forgot the early events."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from kit import ledger as ledger_mod
from kit.ledger import checkpoint, truncate, verify
from sync.hq import integrity, schema, store
from sync.hq.testing import HQServer


def _append(db, ledger, n: int, type_: str = "pos.sale") -> None:
    with db.transaction() as conn:
        for i in range(n):
            ledger.append(conn, type_, {"n": i, "total_cents": 100 + i})


def _fieldkit(kit_env, *args):
    return subprocess.run(
        [sys.executable, "-m", "kit", *args], env=kit_env["env"], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def hq(tmp_path):
    """HQ's real app on SQLite under waitress, in this process."""
    engine = store.make_engine(f"sqlite:///{tmp_path / 'hq.db'}")
    store.create_schema(engine)
    server = HQServer(engine)
    yield server
    server.stop()
    engine.dispose()


@pytest.fixture
def joined(config, hq):
    from sync.credentials import join

    return join(config, hq.url, store.add_kit(hq.engine, config.kit_id, config.site))


def test_truncation_keeps_verify_passing_and_a_tampered_event_after_the_checkpoint_still_fails(db, ctx):
    _append(db, ctx.ledger, 10)
    assert truncate(db, ctx.ledger, 6, "test") == 6
    cp = checkpoint(db.conn)
    assert cp.seq == 6 and cp.deleted == 6
    assert db.scalar("SELECT MIN(seq) FROM events") == 7
    count, problems = verify(db)
    assert problems == [] and count == 5  # 7..10 and the truncation's own event
    last = db.query_one("SELECT type, payload FROM events ORDER BY seq DESC LIMIT 1")
    assert last["type"] == "kit.ledger_truncated"
    # New events chain on; verify still passes.
    _append(db, ctx.ledger, 2)
    assert verify(db)[1] == []
    with db.transaction() as conn:
        conn.execute("DROP TRIGGER events_no_update")
        conn.execute(
            "UPDATE events SET payload = ? WHERE seq = 8", (json.dumps({"n": 99, "total_cents": 1}),)
        )
    problems = verify(db)[1]
    assert any("seq 8" in p and "hash" in p for p in problems)


def test_the_first_event_after_the_checkpoint_must_link_to_it(db, ctx):
    _append(db, ctx.ledger, 5)
    truncate(db, ctx.ledger, 3, "test")
    with db.transaction() as conn:
        conn.execute("DROP TRIGGER kit_ledger_checkpoint_forward")
        conn.execute("UPDATE kit_ledger_checkpoint SET hash = ?", ("f" * 64,))
    assert any("seq 4" in p for p in verify(db)[1])


def test_events_above_the_checkpoint_cannot_be_deleted_and_the_checkpoint_never_goes_back(db, ctx):
    _append(db, ctx.ledger, 5)
    truncate(db, ctx.ledger, 2, "test")
    with pytest.raises(Exception, match="append-only"), db.transaction() as conn:
        conn.execute("DELETE FROM events WHERE seq = 3")
    with pytest.raises(Exception, match="only moves forward"), db.transaction() as conn:
        conn.execute("UPDATE kit_ledger_checkpoint SET seq = 1")
    assert truncate(db, ctx.ledger, 1, "again") == 0  # already gone: nothing to do
    with pytest.raises(ValueError, match="not in the ledger"):
        truncate(db, ctx.ledger, 999, "beyond")


def test_a_ledger_truncated_to_its_last_event_carries_on_from_the_checkpoint(db, ctx):
    _append(db, ctx.ledger, 3)
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO kit_ledger_checkpoint (id, seq, hash, truncated_at, deleted)"
            " SELECT 1, seq, hash, 'now', 3 FROM events WHERE seq = 3"
        )
        conn.execute("DELETE FROM events")
    _append(db, ctx.ledger, 1)
    assert db.scalar("SELECT MIN(seq) FROM events") == 4
    assert verify(db)[1] == []


def test_rebuild_after_truncation_refuses_with_a_plain_message(kit_env, db, ctx):
    _append(db, ctx.ledger, 4, "checkin.mode")
    truncate(db, ctx.ledger, 2, "test")
    db.close()
    done = _fieldkit(kit_env, "ledger", "rebuild")
    assert done.returncode == 1
    assert "truncated through seq 2" in done.stderr and "cannot be rebuilt" in done.stderr
    assert "Traceback" not in done.stderr
    verified = _fieldkit(kit_env, "ledger", "verify")
    assert verified.returncode == 0 and "from the checkpoint at seq 2" in verified.stdout


def test_truncate_by_hand_is_refused_beyond_what_hq_holds(kit_env, db, ctx, joined):
    from sync.agent import SyncAgent

    _append(db, ctx.ledger, 5)
    SyncAgent(joined, db).run_session()
    _append(db, ctx.ledger, 5)  # 6..10: not at HQ
    db.close()
    refused = _fieldkit(kit_env, "ledger", "truncate", "--through", "8")
    assert refused.returncode == 1 and "HQ holds only up to seq 5" in refused.stderr
    done = _fieldkit(kit_env, "ledger", "truncate", "--through", "5")
    assert done.returncode == 0, done.stderr
    assert "deleted 5 events; the ledger starts after seq 5" in done.stdout


def test_sync_after_truncation_still_works_and_hq_checks_the_whole_chain(db, ctx, joined, hq):
    from kit.features import load_features
    from kit.privacy import hooks_from, truncate_old
    from sync.agent import SyncAgent

    agent = SyncAgent(joined, db)
    _append(db, ctx.ledger, 50)
    assert agent.run_session().cursor == 50
    # ledger.keep_days: seen from 40 days on, every event HQ holds is old enough to go.
    assert (
        truncate_old(db, joined, ctx.ledger, hooks_from(load_features()), now=time.time() + 40 * 86400) == 50
    )
    _append(db, ctx.ledger, 20)
    result = agent.run_session()
    assert result.uploaded == 21 and result.parked == 0  # the truncation event and 20 new ones; nothing older
    info = integrity.kit_integrity(hq.engine, joined.kit_id)
    assert info["events"] == 71 and info["missing"] == 0 and info["chain"].ok and info["chain"].linked == 71
    assert verify(db)[1] == []


def test_hq_that_lost_truncated_events_is_told_plainly_and_the_session_carries_on(
    db, ctx, joined, hq, caplog
):
    from sync.agent import SyncAgent

    agent = SyncAgent(joined, db)
    _append(db, ctx.ledger, 30)
    agent.run_session()
    truncate(db, ctx.ledger, 20, "test")
    with hq.engine.begin() as conn:  # HQ restored from an old backup: seqs 5..25 are gone there
        conn.execute(sa.delete(schema.events).where(schema.events.c.seq.between(5, 25)))
    result = agent.run_session()
    assert result.restored == 5  # 21..25: the kit still had them
    assert "hq_missing_truncated_events" in caplog.text and "5-20" in caplog.text
    with hq.engine.connect() as conn:
        ranges, missing = integrity.missing_ranges(conn, joined.kit_id)
    assert ranges == [(5, 20)] and missing == 16
    assert ledger_mod.last_seq(db) == 31
