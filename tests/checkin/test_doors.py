"""Two doors, each kit with its own Mosquitto, bridged as on a site; then the link between them is cut."""

from __future__ import annotations

import socket
import threading
import uuid

import pytest

from checkin.scans import record_scan
from checkin.stats import stats
from kit.db import Database
from kit.sitelink import bridge_conf
from kit.testing import Mosquitto, free_port, wait_for
from tests.checkin.conftest import kit_config, make_door

pytestmark = pytest.mark.slow


class LinkProxy:
    """The network between two kits: a TCP relay that can be cut and healed."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = free_port()
        self.up = True
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self.up = False
        with self.lock:
            for s in self.sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.sockets.clear()

    def heal(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.server.close()


@pytest.fixture
def site(tmp_path, start_service):
    for name in ("hub-broker", "b-broker"):
        (tmp_path / name).mkdir()
    hub = Mosquitto(workdir=tmp_path / "hub-broker").start()
    link = LinkProxy(hub.port)
    broker_b = Mosquitto(workdir=tmp_path / "b-broker",
                         extra_conf=bridge_conf("fair", "doorB", "127.0.0.1", link.port)).start()
    config_a = kit_config(tmp_path / "a", hub.port, "doorA", "fair", checkin_door_name="Door 1", checkin_catchup_seconds=1)
    config_b = kit_config(tmp_path / "b", broker_b.port, "doorB", "fair", checkin_door_name="Door 2",
                          checkin_catchup_seconds=1)
    service_a, service_b = start_service(config_a), start_service(config_b)
    yield service_a, service_b, link
    link.close()
    broker_b.stop()
    hub.stop()


def verdict_at(service, code: str) -> dict:
    d = service.door
    return record_scan(service.ctx.db, service.ctx.ledger, d.rules, code, keyring=d.keyring, source="test")


def peer_admissions(service, origin: str) -> int:
    return service.ctx.db.scalar("SELECT COUNT(*) FROM checkin_peer_events WHERE origin_kit = ? AND verdict = 'admit'",
                                 (origin,))


def test_shared_admission_partition_double_admission_and_catchup(site):
    a, b, link = site
    helper = make_door(a.ctx.config, a.ctx.db)  # registers the signing key on kit A
    make_door(b.ctx.config, b.ctx.db)  # and on kit B
    wait_for(lambda: b.ctx.bus.is_connected and a.ctx.bus.is_connected, 10, what="both services connected")

    # Door 1 admits; Door 2 says already in, naming Door 1, as soon as the message arrives.
    shared = helper.ticket(seed="SHARED001")
    assert verdict_at(a, shared)["verdict"] == "admit"
    wait_for(lambda: peer_admissions(b, "doorA") == 1, 10, what="door B hears of door A's admission")
    refused = verdict_at(b, shared)
    assert refused["verdict"] == "already_in" and "Door 1" in refused["reason"]
    assert b.ctx.db.scalar("SELECT COUNT(*) FROM events WHERE kit != 'doorB'") == 0  # never in B's own ledger

    # The link between the doors goes down; both admit the same ticket, and A admits one more.
    link.cut()
    twice = helper.ticket(seed="TWICE0001")
    assert verdict_at(a, twice)["verdict"] == "admit"
    assert verdict_at(b, twice)["verdict"] == "admit"
    later = helper.ticket(seed="LATER0001")
    assert verdict_at(a, later)["verdict"] == "admit"

    # The link comes back: catch-up brings every missed check-in, and the double admission is flagged.
    link.heal()
    wait_for(lambda: peer_admissions(b, "doorA") == 3 and peer_admissions(a, "doorB") == 1, 20,
             what="catch-up after the partition")
    assert verdict_at(b, later)["verdict"] == "already_in"
    for service in (a, b):
        with service.ctx.db.transaction() as conn:
            doubles = stats(conn, service.door.rules)["double_admissions"]
        assert len(doubles) == 1, service.door.rules.kit
        assert doubles[0]["first"]["door"] in ("Door 1", "Door 2")
        assert {doubles[0]["first"]["door"], doubles[0]["second"]["door"]} == {"Door 1", "Door 2"}
    cursor_b = b.ctx.db.scalar("SELECT highest_seq FROM site_peer_cursor WHERE feature = 'checkin' AND origin_kit = 'doorA'")
    assert cursor_b == a.ctx.db.scalar("SELECT MAX(seq) FROM events WHERE type LIKE 'checkin.%' AND type != 'checkin.mode'")


def test_a_door_that_was_off_catches_up_and_a_gap_asks_for_more(tmp_path, mosquitto, start_service):
    config_a = kit_config(tmp_path / "a", mosquitto.port, "gateA", "market", checkin_door_name="Gate A")
    config_b = kit_config(tmp_path / "b", mosquitto.port, "gateB", "market", checkin_door_name="Gate B")
    a = start_service(config_a)
    helper = make_door(config_a, a.ctx.db)
    make_door(config_b, Database(config_b.db_path))
    codes = [helper.ticket(seed=f"EARLY{i:04d}") for i in range(3)]
    for code in codes:
        assert verdict_at(a, code)["verdict"] == "admit"
    wait_for(lambda: a.ctx.db.scalar("SELECT published_seq FROM site_outbox WHERE feature = 'checkin'") == 3, 10, what="published")

    # Gate B starts after the fact: nothing is retained on the bus, so only catch-up can tell it.
    b = start_service(config_b)
    wait_for(lambda: peer_admissions(b, "gateA") == 3, 10, what="catch-up of a door that was off")
    assert verdict_at(b, codes[1])["verdict"] == "already_in"
    assert cursor(b, "gateA") == 3

    # A message whose predecessor never arrived leaves the cursor behind and asks for a catch-up.
    link = b.door.link
    link.request_catchup("checkin")
    assert not link.wants_catchup("checkin")
    z9, z4 = str(uuid.uuid4()), str(uuid.uuid4())
    assert link.receive("checkin", {"origin_kit": "gateZ", "seq": 9, "prev": 4, "id": z9, "type": "checkin.scanned",
                                    "hlc": 1, "payload": {"verdict": "admit", "ticket_key": "zz", "admitted": True}})
    assert link.wants_catchup("checkin")
    assert cursor(b, "gateZ") == 0
    assert link.receive("checkin", {"origin_kit": "gateZ", "seq": 4, "prev": 0, "id": z4, "type": "checkin.scanned",
                                    "hlc": 1, "payload": {"verdict": "exit", "ticket_key": "zz"}})
    assert cursor(b, "gateZ") == 9
    q = str(uuid.uuid4())
    for topic_kit, bad in (
            ("x y", {"origin_kit": "x y", "seq": 1, "prev": 0, "id": q, "type": "checkin.scanned", "hlc": 1, "payload": {}}),
            ("gateZ", {"origin_kit": "gateZ", "seq": 15, "prev": 15, "id": q, "type": "checkin.scanned", "hlc": 1,
                       "payload": {}}),
            ("gateZ", {"origin_kit": "gateZ", "seq": 16, "prev": 9, "id": q, "type": "pos.sale", "hlc": 1, "payload": {}}),
            ("gateZ", {"origin_kit": "gateZ"})):
        link.on_peer_message(f"fieldkit/site/market/checkin/{topic_kit}", bad)  # refused with a log line, never raised
    assert b.ctx.db.scalar("SELECT COUNT(*) FROM checkin_peer_events WHERE origin_kit != 'gateA'") == 2
    assert cursor(b, "gateZ") == 9


def cursor(service, origin: str) -> int:
    return service.ctx.db.scalar("SELECT highest_seq FROM site_peer_cursor WHERE feature = 'checkin' AND origin_kit = ?",
                                 (origin,))
