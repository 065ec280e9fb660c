"""A second mirror (site.mirror_peers): every kit's ledger on the hub and on the peer, each acknowledged
on its own; a peer cut off catches up when its link heals while the hub stays current."""

from __future__ import annotations

import sqlalchemy as sa

from kit.sitelink import bridge_conf
from kit.testing import Mosquitto, wait_for
from sync.hq import schema, store
from sync.mirror_hub import mirror_url
from sync.mirror_loop import start_mirror
from tests.checkin.conftest import kit_config
from tests.checkin.test_doors import LinkProxy
from tests.conftest import ServiceThread
from tests.sync.conftest import append_events


def mirror_only(ctx) -> None:
    start_mirror(ctx)
    ctx.stopping.wait()


def held(config, kit: str) -> int:
    engine = store.make_engine(mirror_url(config))
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(schema.events)
                                    .where(schema.events.c.kit == kit)).scalar() or 0)
    except sa.exc.OperationalError:
        return 0
    finally:
        engine.dispose()


def test_a_kit_is_mirrored_on_the_hub_and_on_a_peer_and_a_cut_off_peer_catches_up(tmp_path):
    for name in ("hub", "peer", "kit"):
        (tmp_path / f"{name}-broker").mkdir()
    hub_broker = Mosquitto(workdir=tmp_path / "hub-broker").start()
    link = LinkProxy(hub_broker.port)
    peer_broker = Mosquitto(workdir=tmp_path / "peer-broker",
                            extra_conf=bridge_conf("fair", "peer1", "127.0.0.1", link.port)).start()
    kit_broker = Mosquitto(workdir=tmp_path / "kit-broker",
                           extra_conf=bridge_conf("fair", "till1", "127.0.0.1", hub_broker.port)).start()
    configs = {"hub1": kit_config(tmp_path / "hub", hub_broker.port, "hub1", "fair", site_hub=1),
               "peer1": kit_config(tmp_path / "peer", peer_broker.port, "peer1", "fair", site_mirror_peers="peer1"),
               "till1": kit_config(tmp_path / "till", kit_broker.port, "till1", "fair", site_mirror_peers="peer1")}
    kits = {k: ServiceThread("sync", c, mirror_only) for k, c in configs.items()}
    try:
        till = kits["till1"]
        append_events(till.ctx.db, till.ctx.ledger, 20)
        for mirror in ("hub1", "peer1"):
            wait_for(lambda m=mirror: held(configs[m], "till1") == 20, 20, what=f"{mirror} mirrors till1")
        wait_for(lambda: {r["mirror"]: r["upto"] for r in till.ctx.db.query(
            "SELECT mirror, upto FROM sync_mirror_cursor")} == {"hub1": 20, "peer1": 20}, 20,
                 what="till1 knows both mirrors hold its 20 events")

        link.cut()  # the peer is cut off: the hub stays current, the peer catches up after
        append_events(till.ctx.db, till.ctx.ledger, 10, start=20)
        wait_for(lambda: held(configs["hub1"], "till1") == 30, 20, what="the hub stays current")
        assert held(configs["peer1"], "till1") == 20
        link.heal()
        wait_for(lambda: held(configs["peer1"], "till1") == 30, 60, what="the peer catches up after the cut")
        wait_for(lambda: till.ctx.db.scalar("SELECT MIN(upto) FROM sync_mirror_cursor") == 30, 20,
                 what="till1 knows both hold everything")
    finally:
        for k in kits.values():
            k.stop()
        for b in (kit_broker, peer_broker):
            b.stop()
        link.close()
        hub_broker.stop()
