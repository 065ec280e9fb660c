"""One uplink for the whole site: the hub relays its site's kits to an HQ they never reach themselves.

Real HQ (waitress, SQLite), real Mosquittos bridged as on a site, the real sync service on the hub, the
real mirror sender on the kits. HQ holds each event once and records which kit delivered it; the kits
learn HQ's acknowledgement through the hub; one of them then reaches HQ itself and adds nothing.
"""

from __future__ import annotations

import hashlib

import pytest

from kit.sitelink import bridge_conf
from kit.testing import Mosquitto, wait_for
from sync.agent import SyncAgent
from sync.client import HQClient, HQRejectsKit
from sync.credentials import join
from sync.hq import documents, store
from sync.hq.relay import allow_relay, delivered_by
from sync.hq.testing import HQServer
from sync.mirror import hq_holds_upto
from sync.mirror_loop import start_mirror
from tests.checkin.conftest import kit_config
from tests.conftest import ServiceThread
from tests.sync.conftest import append_events

pytestmark = pytest.mark.slow


def joined(config, url: str, token: str):
    """`fieldkit sync join` for a kit of this test (join() itself reloads the process's own config)."""
    join(config, url, token)
    return config.with_values(sync__hq_url=url)


def mirror_only(ctx) -> None:
    """A kit that never reaches HQ: only its mirror sender runs (as in its sync service)."""
    start_mirror(ctx)
    ctx.stopping.wait()


@pytest.fixture
def site(tmp_path):
    engine = store.make_engine(f"sqlite:///{tmp_path / 'hq.db'}")
    hq = HQServer(engine)
    for name in ("hub-broker", "a-broker", "b-broker"):
        (tmp_path / name).mkdir()
    hub_broker = Mosquitto(workdir=tmp_path / "hub-broker").start()
    brokers = [Mosquitto(workdir=tmp_path / f"{k}-broker", extra_conf=bridge_conf("fair", f"door{k}", "127.0.0.1",
                                                                                  hub_broker.port)).start()
               for k in ("a", "b")]
    hub_token = store.add_kit(engine, "hub1", "fair")
    allow_relay(engine, "hub1", "fair")
    tokens = {k: store.add_kit(engine, k, "fair") for k in ("doora", "doorb")}
    hub_config = joined(kit_config(tmp_path / "hub", hub_broker.port, "hub1", "fair", site_hub=1), hq.url, hub_token)
    from sync.service import run

    started = [ServiceThread("sync", hub_config, run)]
    for k, broker in zip(("doora", "doorb"), brokers, strict=True):
        started.append(ServiceThread("sync", kit_config(tmp_path / k, broker.port, k, "fair"), mirror_only))
    yield hq, started, tokens, hub_token
    for s in started:
        s.stop()
    for b in (*brokers, hub_broker):
        b.stop()
    hq.stop()
    engine.dispose()


def test_the_hub_relays_its_sites_kits_once_each_and_they_learn_hq_holds_their_events(site):
    hq, (hub, a, b), tokens, _ = site
    for i, kit in enumerate((a, b)):
        append_events(kit.ctx.db, kit.ctx.ledger, 30 + 10 * i)
    for kit in (a, b):
        n = kit.ctx.db.scalar("SELECT MAX(seq) FROM events")
        wait_for(lambda kit=kit, n=n: store.count_events(hq.engine, kit.config.kit_id) == n, 30,
                 what=f"HQ holds {kit.config.kit_id}'s events, relayed by the hub")
        wait_for(lambda kit=kit, n=n: hq_holds_upto(kit.ctx.db) == n, 20,
                 what=f"{kit.config.kit_id} learns through the hub that HQ holds its events")
    assert {d["via_kit"] for d in delivered_by(hq.engine, "doora")} == {"hub1"}
    assert store.count_events(hq.engine, "hub1") == 0  # the mirrored events are never uploaded as the hub's

    # Kit A reaches HQ itself at last: everything is there already.
    before = store.count_events(hq.engine)
    config = joined(a.config, hq.url, tokens["doora"])
    result = SyncAgent(config, a.ctx.db).run_session()
    assert result.stored == 0 and store.count_events(hq.engine) == before


def test_a_relay_token_relays_its_own_site_only_and_a_plain_token_relays_nothing(site, tmp_path):
    hq, _, tokens, hub_token = site
    store.add_kit(hq.engine, "far1", "elsewhere")
    body = b'{"seq": 1}\n'
    for token, kit, origin in ((hub_token, "hub1", "far1"), (tokens["doorb"], "doorb", "doora"),
                               (hub_token, "hub1", "ghost")):
        client = HQClient(hq.url, token, kit)
        with pytest.raises(HQRejectsKit, match="403"):
            client.request("POST", f"/api/v1/kits/{kit}/relay/events?origin={origin}", body=body,
                           headers={"Content-Type": "application/x-ndjson"})
        client.close()
    assert store.count_events(hq.engine, "far1") == 0 and delivered_by(hq.engine, "far1") == []


def test_the_hub_passes_on_hqs_documents_to_a_kit_that_never_reaches_hq(site):
    hq, (hub, a, b), _, _ = site
    catalogue = b"sku,name,price\nRELAY-1,Relayed tote,12.50\n"
    put = documents.put_document(hq.engine, "pos.catalogue", catalogue, "relayed.csv", kit="doora")
    other = documents.put_document(hq.engine, "pos.catalogue", b"sku,name,price\nFAR-1,Other,1.00\n", "b.csv",
                                   kit="doorb")
    append_events(a.ctx.db, a.ctx.ledger, 5)  # the hub learns of kit A as it mirrors it, and serves it at once
    row = wait_for(lambda: a.ctx.db.query_one("SELECT * FROM sync_documents WHERE hq_id = ?", (put["id"],)), 30,
                   what="kit A holds HQ's catalogue, passed on by the hub")
    assert row["applied"] == 1 and row["kind"] == "pos.catalogue"
    assert a.ctx.db.scalar("SELECT name FROM pos_products WHERE sku = 'RELAY-1'") == "Relayed tote"
    # only its own: kit B's document never reached kit A
    assert a.ctx.db.scalar("SELECT COUNT(*) FROM sync_documents WHERE hq_id = ?", (other["id"],)) == 0
    assert b.ctx.db.scalar("SELECT COUNT(*) FROM sync_documents WHERE hq_id = ?", (put["id"],)) == 0


def test_a_forged_or_torn_relayed_document_is_refused_and_nothing_is_stored(site, caplog):
    from sync.relay_docs import DocumentReceiver, check_part, parts

    _, (_, a, _), _, _ = site
    data = b"sku,name,price\nX-1,Forged,1.00\n"
    meta = {"id": 77, "kind": "pos.catalogue", "version": 1, "filename": "x.csv",
            "sha256": hashlib.sha256(b"something else").hexdigest()}
    receiver = DocumentReceiver(a.config, a.ctx.db, a.ctx.bus)
    for bad in ({"id": "1"}, {**parts(meta, data)[0], "kind": "../etc"}, {**parts(meta, data)[0], "data": "%%%"},
                {**parts(meta, data)[0], "parts": 10**6}):
        with pytest.raises(ValueError):
            check_part(bad)
        receiver.on_part("t", bad)
    receiver.on_part("t", parts(meta, data)[0])  # whole, but its sha256 is another file's
    assert receiver.pump() == 0 and a.ctx.db.scalar("SELECT COUNT(*) FROM sync_documents WHERE hq_id = 77") == 0
    assert "event=relay_doc_refused" in caplog.text and "sha256 does not match" in caplog.text
