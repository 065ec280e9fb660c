"""Two merch kits, each with its own Mosquitto, bridged as on a site: one drop, one quantity, and a cut link."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kit.db import Database
from kit.documents import import_document
from kit.sitelink import bridge_conf
from kit.testing import Mosquitto, wait_for
from pos.checkout import make_sale, parse_sale_request
from pos.drops import start_drop, status
from tests.checkin.conftest import kit_config
from tests.checkin.test_doors import LinkProxy
from tests.conftest import ServiceThread

pytestmark = pytest.mark.slow
CATALOGUE = (Path(__file__).parents[2] / "pos" / "demo" / "catalogue.csv").read_bytes()


class MerchKit(ServiceThread):
    """The real pos service loop on a thread (as `fieldkit run pos`), with its own bus connection."""

    def __init__(self, config):
        from pos.service import run

        config = config.with_values(pos__printer__retry_seconds=0.2)
        self.heard: list[dict] = []
        db = Database(config.db_path)  # the catalogue before the service's first turn
        import_document(config, db, "pos.catalogue", CATALOGUE, "catalogue.csv")
        db.close()
        super().__init__("pos", config, run)
        self.ctx.bus.subscribe(f"fieldkit/{config.kit_id}/pos/event/drop", lambda _t, m: self.heard.append(m), qos=1)

    def sell(self, sku: str) -> dict:
        request = parse_sale_request({"items": [{"sku": sku, "qty": 1}],
                                      "payments": [{"method": "cash", "amount": "50.00"}]})
        return make_sale(self.ctx.db, self.ctx.ledger, self.config, request).sale

    def drop(self) -> dict:
        return status(self.ctx.db.conn, time.time())[0]

@pytest.fixture
def site(tmp_path):
    for name in ("hub-broker", "b-broker"):
        (tmp_path / name).mkdir()
    hub = Mosquitto(workdir=tmp_path / "hub-broker").start()
    link = LinkProxy(hub.port)
    broker_b = Mosquitto(workdir=tmp_path / "b-broker", extra_conf=bridge_conf("fair", "merchB", "127.0.0.1", link.port)).start()
    a = MerchKit(kit_config(tmp_path / "a", hub.port, "merchA", "fair"))
    b = MerchKit(kit_config(tmp_path / "b", broker_b.port, "merchB", "fair"))
    yield a, b, link
    for k in (a, b):
        k.stop()
    link.close()
    broker_b.stop()
    hub.stop()


def test_a_drop_started_on_one_kit_sells_on_both_and_an_oversell_in_a_partition_is_flagged(site):
    a, b, link = site
    with a.ctx.db.transaction() as conn:
        start_drop(conn, a.ctx.ledger, name="Poster drop", sku="POSTER", price_cents=800, quantity=3, minutes=15)
    wait_for(lambda: status(b.ctx.db.conn, time.time()), 15, what="kit B holds kit A's drop")
    assert b.sell("POSTER")["lines"][0]["unit_cents"] == 800  # B sells it at the offer price from its own stock
    wait_for(lambda: a.drop()["sold"] == 1, 15, what="kit A hears of kit B's drop sale")
    assert a.sell("POSTER")["lines"][0]["unit_cents"] == 800
    wait_for(lambda: b.drop()["left"] == 1, 15, what="kit B hears of kit A's sale: one left")
    wait_for(lambda: any(m["when"] == "started" for m in b.heard), 10, what="the drop announced on kit B's bus")

    link.cut()  # both kits sell "the last" unit while they cannot see each other: both sales stand
    assert a.sell("POSTER")["lines"][0]["unit_cents"] == 800
    assert b.sell("POSTER")["lines"][0]["unit_cents"] == 800
    time.sleep(1.0)
    assert a.drop()["oversold"] == 0 and b.drop()["oversold"] == 0  # neither knows yet
    link.heal()
    for k in (a, b):
        wait_for(lambda k=k: k.drop()["oversold"] == 1, 30, what=f"{k.config.kit_id} sees the oversell after the link heals")
        wait_for(lambda k=k: any(m["when"] == "oversold" for m in k.heard), 10, what="the oversell flagged on the bus")
    assert a.drop()["phase"] == "sold_out" and a.sell("POSTER")["lines"][0]["unit_cents"] == 1250  # normal price again
    assert b.ctx.db.scalar("SELECT COUNT(*) FROM events WHERE kit != 'merchB'") == 0  # never in B's own ledger


def test_a_member_ticket_unlocked_on_both_kits_in_a_partition_stands_and_is_flagged(site):
    from checkin.verify import ticket_ref
    from pos.drop_members import unlock

    a, b, link = site
    with a.ctx.db.transaction() as conn:
        start_drop(conn, a.ctx.ledger, name="Members drop", sku="POSTER", price_cents=800, quantity=5, minutes=15,
                   members_minutes=10, member_types=["Member"])
    wait_for(lambda: status(b.ctx.db.conn, time.time()), 15, what="kit B holds kit A's members-first drop")
    # check-in's answer for one member ticket (tests/pos/test_drop_members.py asks the real service for it)
    member = {"ok": True, "ticket_ref": ticket_ref("MEM-0001"), "ticket_type": "Member"}
    with a.ctx.db.transaction() as conn:
        unlock(conn, a.ctx.ledger, "Members drop", member, by="merch")
    wait_for(lambda: b.drop()["unlocks"] == 1, 15, what="kit B hears of the unlock on kit A")
    with pytest.raises(Exception, match="already unlocked"), b.ctx.db.transaction() as conn:
        unlock(conn, b.ctx.ledger, "Members drop", member, by="merch")  # once per ticket, site-wide

    second = {"ok": True, "ticket_ref": ticket_ref("MEM-0002"), "ticket_type": "Member"}
    link.cut()  # the same ticket at both tables while they cannot see each other: both unlocks stand
    for k in (a, b):
        with k.ctx.db.transaction() as conn:
            unlock(conn, k.ctx.ledger, "Members drop", second, by="merch")
    link.heal()
    for k in (a, b):
        wait_for(lambda k=k: k.drop()["tickets_reused"] == 1, 30, what=f"{k.config.kit_id} sees the ticket used twice")
        wait_for(lambda k=k: any(m["when"] == "member_ticket_reused" for m in k.heard), 10, what="flagged on the bus")
