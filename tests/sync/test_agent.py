"""The kit's sync agent against a real HQ over HTTP: cursor, parking, restored HQ, cut connections."""

from __future__ import annotations

import random
import shutil
import sqlite3

import pytest
import sqlalchemy as sa

from kit.ledger import Ledger, last_seq
from sync.agent import SyncAgent, retry_delay
from sync.client import HQUnreachable, SyncError
from sync.credentials import join
from sync.hq import schema, store
from sync.hq.testing import HQServer
from tests.sync.conftest import FaultProxy, append_events


def hq_ids(engine, kit: str) -> list[str]:
    with engine.connect() as conn:
        return conn.execute(sa.select(schema.events.c.id).where(schema.events.c.kit == kit)).scalars().all()


def kit_ids(db) -> set[str]:
    return {r[0] for r in db.query("SELECT id FROM events")}


def test_backlog_goes_up_in_batches_and_the_cursor_follows_hq(ctx, joined, hq):
    append_events(ctx.db, ctx.ledger, 1234)
    agent = SyncAgent(joined.with_values(sync__batch_size=100), ctx.db)
    assert agent.state()["backlog"] == 1234
    seen = []
    result = agent.run_session(progress=lambda done, total: seen.append((done, total)))
    assert (result.uploaded, result.stored, result.duplicate, result.parked) == (1234, 1234, 0, 0)
    assert seen[0] == (0, 1234) and seen[-1] == (1234, 1234) and len(seen) == 14
    assert sorted(hq_ids(hq.engine, "test1")) == sorted(kit_ids(ctx.db))
    state = agent.state()
    assert (state["cursor"], state["backlog"], state["last_error"]) == (1234, 0, None)
    assert state["last_success"]
    append_events(ctx.db, ctx.ledger, 5, start=2000)
    assert agent.run_session().uploaded == 5  # only what is new
    assert store.count_events(hq.engine, "test1") == 1239


def test_a_refused_record_is_parked_with_its_reason_and_does_not_block_the_rest(ctx, joined, hq):
    append_events(ctx.db, ctx.ledger, 10)
    renamed = Ledger("oldname", ctx.clock)  # written before the lead renamed the kit
    with ctx.db.transaction() as conn:
        renamed.append(conn, "pos.sale", {"n": "old"})
    append_events(ctx.db, ctx.ledger, 10, start=100)
    agent = SyncAgent(joined.with_values(sync__batch_size=4), ctx.db)
    result = agent.run_session()
    assert (result.stored, result.parked) == (20, 1)
    state = agent.state()
    assert state["backlog"] == 0 and state["cursor"] == 21
    assert state["parked"] == 1
    assert state["parked_records"][0]["seq"] == 11
    assert "belongs to kit 'oldname'" in state["parked_records"][0]["error"]
    assert store.count_events(hq.engine, "test1") == 20
    # Sending parked records again does not duplicate anything and parks it again.
    assert agent.retry_parked() == 1
    again = agent.run_session()
    assert (again.uploaded, again.duplicate, again.parked) == (11, 10, 1)


def test_hq_unreachable_is_an_error_that_loses_nothing(ctx, config):
    from kit.testing import free_port

    cfg = join(config, f"http://127.0.0.1:{free_port()}", "fk_test1_token")
    append_events(ctx.db, ctx.ledger, 3)
    agent = SyncAgent(cfg, ctx.db)
    with pytest.raises(HQUnreachable):
        agent.run_session()
    state = agent.state()
    assert state["backlog"] == 3 and state["cursor"] == 0
    assert "unreachable" in state["last_error"]


@pytest.mark.parametrize("hq_url_db", ["sqlite"], indirect=True)
def test_wrong_token_says_so(ctx, config, hq):
    store.add_kit(hq.engine, "test1", "testsite")
    agent = SyncAgent(join(config, hq.url, "fk_test1_wrong"), ctx.db)
    with pytest.raises(SyncError, match="refuses kit 'test1'"):
        agent.run_session()


def test_hq_restored_from_an_older_copy_is_sent_the_gap_again(ctx, config, tmp_path):
    db_file = tmp_path / "hq.db"
    engine = store.make_engine(f"sqlite:///{db_file}")
    server = HQServer(engine)
    proxy = FaultProxy(server.port)  # the kit's HQ address stays the same across the restore
    try:
        token = store.add_kit(engine, "test1", "testsite")
        agent = SyncAgent(join(config, proxy.url, token), ctx.db)
        append_events(ctx.db, ctx.ledger, 300)
        agent.run_session()
        backup = tmp_path / "hq-backup.db"
        with sqlite3.connect(db_file) as src, sqlite3.connect(backup) as dst:
            src.backup(dst)
        append_events(ctx.db, ctx.ledger, 200, start=300)
        assert agent.run_session().uploaded == 200
        server.stop()
        engine.dispose()
        for suffix in ("", "-wal", "-shm"):
            (tmp_path / f"hq.db{suffix}").unlink(missing_ok=True)
        shutil.copy(backup, db_file)
        engine = store.make_engine(f"sqlite:///{db_file}")
        server = HQServer(engine)
        proxy.upstream_port = server.port
        assert store.count_events(engine, "test1") == 300
        result = agent.run_session()
        assert result.rewound_from == 500
        assert (result.uploaded, result.stored) == (200, 200)
        assert sorted(hq_ids(engine, "test1")) == sorted(kit_ids(ctx.db))
        assert agent.state()["cursor"] == 500
    finally:
        proxy.close()
        server.stop()
        engine.dispose()


def test_connections_cut_at_random_points_leave_every_event_at_hq_exactly_once(ctx, config, hq):
    token = store.add_kit(hq.engine, "test1", "testsite")
    proxy = FaultProxy(hq.port, seed=20261123, cut_ratio=1.0)
    try:
        cfg = join(config, proxy.url, token).with_values(sync__batch_size=250, sync__timeout_seconds=5.0)
        append_events(ctx.db, ctx.ledger, 10_000)
        agent = SyncAgent(cfg, ctx.db)
        failures, duplicates = 0, 0
        for _ in range(500):
            try:
                result = agent.run_session()
                duplicates += result.duplicate
            except SyncError:
                failures += 1
                continue
            if agent.state()["backlog"] == 0:
                break
        assert agent.state()["backlog"] == 0
        assert agent.state()["cursor"] == last_seq(ctx.db) == 10_000
        ids = hq_ids(hq.engine, "test1")
        assert len(ids) == 10_000 and set(ids) == kit_ids(ctx.db)
        # The faults really happened: requests cut mid-way, and answers lost after HQ had committed.
        assert failures > 5, (failures, proxy.cuts)
        assert proxy.cuts["request"] > 0 and proxy.cuts["response"] > 0
        assert duplicates > 0
    finally:
        proxy.close()


def test_retry_delay_backs_off_with_jitter_and_is_capped():
    rng = random.Random(1)
    delays = [retry_delay(n, 2.0, 300.0, rng) for n in range(1, 12)]
    assert 1.0 <= delays[0] <= 2.0
    assert all(150.0 <= d <= 300.0 for d in delays[9:])
    assert delays[4] > delays[1]
    assert len({round(retry_delay(5, 2.0, 300.0, rng), 3) for _ in range(20)}) > 10  # kits do not retry in step


def test_a_captive_portal_is_not_mistaken_for_hq(ctx, config):
    import http.server
    import threading

    class Portal(http.server.BaseHTTPRequestHandler):
        def _page(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b"<html>Please accept the terms of the venue Wi-Fi</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _page

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Portal)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        agent = SyncAgent(join(config, f"http://127.0.0.1:{server.server_port}", "fk_test1_x"), ctx.db)
        append_events(ctx.db, ctx.ledger, 3)
        with pytest.raises(HQUnreachable, match="captive portal"):
            agent.run_session()
        assert agent.state()["cursor"] == 0 and agent.state()["backlog"] == 3
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("hq_url_db", ["sqlite"], indirect=True)
def test_a_batch_too_large_for_hq_is_split_until_it_fits(ctx, config, hq_engine):
    server = HQServer(hq_engine, max_body_bytes=6_000)  # a strict proxy or a small HQ limit
    try:
        token = store.add_kit(hq_engine, "test1", "testsite")
        agent = SyncAgent(join(config, server.url, token).with_values(sync__batch_size=400), ctx.db)
        append_events(ctx.db, ctx.ledger, 400)
        result = agent.run_session()
        assert (result.stored, result.parked) == (400, 0)
        assert agent.state()["backlog"] == 0
    finally:
        server.stop()
