"""The sync service as it runs on the kit: real broker, real HQ over HTTP, documents applied by their owner's importer."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kit.testing import wait_for
from sync.agent import SyncAgent
from sync.hq import documents
from sync.service import run
from tests.sync.conftest import append_events

CATALOGUE = Path(__file__).resolve().parents[2] / "pos" / "demo" / "catalogue.csv"


@pytest.mark.parametrize("hq_url_db", ["sqlite"], indirect=True)
def test_service_uploads_pulls_documents_and_answers_sync_now(ctx, joined, hq, listen):
    append_events(ctx.db, ctx.ledger, 50)
    documents.put_document(hq.engine, "pos.catalogue", CATALOGUE.read_bytes(), "catalogue.csv", site="testsite")
    documents.put_document(hq.engine, "venue.map", b"<svg/>", "Plan für Tür 2.svg", kit="test1")
    documents.put_document(hq.engine, "venue.map", b"not for us", "map.svg", kit="someoneelse")
    ctx.bus.publish("fieldkit/test1/sync/state", "", retain=True, qos=1)  # the broker outlives each test
    recorder = listen("fieldkit/test1/sync/#")
    ctx.config = joined
    worker = threading.Thread(target=run, args=(ctx,), daemon=True)
    worker.start()
    try:
        state_topic, event_topic = "fieldkit/test1/sync/state", "fieldkit/test1/sync/event/document"
        recorder.wait(lambda msgs: len([t for t, _ in msgs if t == event_topic]) >= 2, timeout=15,
                      what="two documents announced")
        assert SyncAgent(joined, ctx.db).state()["backlog"] == 0  # documents come after the upload
        recorder.wait(lambda msgs: any(t == state_topic and p.get("backlog") == 0 and p.get("documents")
                                       for t, p in msgs), timeout=10, what="retained sync state")
        announced = {p["kind"]: p for p in recorder.on(event_topic)}
        assert announced["pos.catalogue"]["applied"] is True
        assert "imported" in announced["pos.catalogue"]["result"]
        assert announced["venue.map"]["applied"] is False
        assert Path(announced["venue.map"]["path"]).read_bytes() == b"<svg/>"
        imported = ctx.db.query("SELECT kind, source, source_version FROM kit_documents")
        assert [(r["kind"], r["source"]) for r in imported] == [("pos.catalogue", "hq")]
        assert ctx.db.scalar("SELECT COUNT(*) FROM pos_products") > 5  # pos's own importer built its table
        # "Sync now" from the dashboard or another process: answered with the request's id.
        append_events(ctx.db, ctx.ledger, 7, start=100)
        ctx.bus.publish("fieldkit/test1/sync/cmd/now", {"id": "req-42"}, qos=1)
        reply = wait_for(lambda: [p for p in recorder.on("fieldkit/test1/sync/event/now") if p.get("id") == "req-42"],
                         timeout=15, what="answer to sync/cmd/now")[0]
        assert reply["ok"] is True and reply["state"]["backlog"] == 0
        assert len(recorder.on(event_topic)) == 2  # nothing downloaded twice
    finally:
        ctx.stopping.set()
        worker.join(timeout=10)
    assert not worker.is_alive()


@pytest.mark.parametrize("hq_url_db", ["sqlite"], indirect=True)
def test_uploads_by_itself_when_hq_becomes_reachable(ctx, config, hq_engine, listen):
    from kit.testing import free_port
    from sync.credentials import join
    from sync.hq import store
    from sync.hq.testing import HQServer
    from tests.sync.conftest import FaultProxy

    token = store.add_kit(hq_engine, "test1", "testsite")
    proxy = FaultProxy(free_port())  # the uplink is down: nothing answers behind it
    ctx.config = join(config, proxy.url, token).with_values(sync__retry_min_seconds=0.2, sync__retry_max_seconds=1.0)
    append_events(ctx.db, ctx.ledger, 25)
    worker = threading.Thread(target=run, args=(ctx,), daemon=True)
    worker.start()
    server = None
    try:
        agent = SyncAgent(ctx.config, ctx.db)
        wait_for(lambda: agent.state()["last_error"], timeout=10, what="a failed attempt")
        assert agent.state()["backlog"] == 25
        server = HQServer(hq_engine)
        proxy.upstream_port = server.port  # the kit is back online
        wait_for(lambda: agent.state()["backlog"] == 0 and agent.state()["last_error"] is None, timeout=15,
                 what="the backlog uploaded without being asked")
        assert store.count_events(hq_engine, "test1") == 25
        assert agent.state()["last_success"]
    finally:
        ctx.stopping.set()
        worker.join(timeout=10)
        proxy.close()
        if server:
            server.stop()
