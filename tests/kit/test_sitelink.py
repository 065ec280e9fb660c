"""The site link (kit/sitelink.py) with a real broker: two kits, check-in and a second, tiny feature channel.

Each kit has its own database, ledger and bus connection; they meet on one Mosquitto as kits of one site
do through their bridged brokers. Hostile peers publish straight onto the site topics.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from checkin.peers import checkin_channel
from checkin.scans import record_scan
from checkin.validate import DoorRules
from kit.clock import HLC_COUNTER_BITS
from kit.core_migrations import CORE
from kit.db import Database, MigrationSet, apply_migrations
from kit.features import all_migration_sets
from kit.ledger import ClockAheadError, verify
from kit.service import make_context
from kit.sitelink import Channel, PeerEvent, PeerRefused, SiteLink
from kit.testing import wait_for
from tests.checkin.conftest import kit_config, make_door

pytestmark = pytest.mark.slow

MEMO_TABLE = """CREATE TABLE IF NOT EXISTS memo_peer_notes (
    origin_kit TEXT NOT NULL, origin_seq INTEGER NOT NULL, event_id TEXT NOT NULL, text TEXT NOT NULL,
    PRIMARY KEY (origin_kit, origin_seq))"""


def memo_channel(catchup_seconds: float) -> Channel:
    """A second feature, as small as a feature can be: notes shared across the site."""

    def validate(event: PeerEvent) -> str | None:
        text = event.payload.get("text")
        return None if isinstance(text, str) and len(text) <= 200 else "text"

    def store(conn, event: PeerEvent) -> bool:
        cur = conn.execute("INSERT OR IGNORE INTO memo_peer_notes VALUES (?,?,?,?)",
                           (event.origin_kit, event.seq, event.id, event.payload["text"]))
        return cur.rowcount == 1

    return Channel("memo", ("memo.note",), validate, store, catchup_seconds=catchup_seconds)


class Kit:
    """One kit: database, ledger, bus and a site link pumped by a thread, as a service loop does."""

    def __init__(self, tmp_path, port: int, kit_id: str, site: str, catchup_seconds: float = 3600):
        self.config = kit_config(tmp_path / kit_id, port, kit_id, site)
        self.ctx = make_context("sitelink", self.config)
        self.db = self.ctx.db
        self.db.conn.execute(MEMO_TABLE)
        self.door = make_door(self.config, self.db)
        self.link = SiteLink(self.db, self.ctx.ledger, self.ctx.bus, site, kit_id)
        self.link.register(checkin_channel(DoorRules.from_config(self.config), catchup_seconds=catchup_seconds))
        self.link.register(memo_channel(catchup_seconds))
        self.pumping = threading.Event()
        self.pumping.set()
        self.stopped = threading.Event()
        assert self.ctx.bus.start(wait=5)
        self.link.start()
        # The broker handles one connection's packets in order: once a later subscription works, so do the link's.
        probe, heard = f"fieldkit/{kit_id}/test/probe", threading.Event()
        self.ctx.bus.subscribe(probe, lambda _t, _m: heard.set(), qos=1)
        wait_for(lambda: self.ctx.bus.publish(probe, {}, qos=1) or heard.wait(0.2), 5, what="subscriptions active")
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        while not self.stopped.is_set():
            if self.pumping.is_set():
                self.link.pump()
            self.link.wait(0.05)

    def note(self, text: str) -> int:
        with self.db.transaction() as conn:
            return self.ctx.ledger.append(conn, "memo.note", {"text": text}).seq

    def admit(self, seed: str) -> dict:
        result = record_scan(self.db, self.ctx.ledger, self.door.rules, self.door.ticket(seed=seed),
                             keyring=self.door.keyring, source="test")
        self.link.wake.set()
        return result

    def cursor(self, feature: str, origin: str) -> int:
        return self.db.scalar("SELECT highest_seq FROM site_peer_cursor WHERE feature = ? AND origin_kit = ?",
                              (feature, origin)) or 0

    def held(self) -> dict[str, int]:
        return {table: self.db.scalar(f"SELECT COUNT(*) FROM {table}")
                for table in ("checkin_peer_events", "memo_peer_notes", "site_peer_cursor", "site_peer_pending")}

    def close(self) -> None:
        self.stopped.set()
        self.link.wake.set()
        self.thread.join(5)
        self.ctx.bus.stop()
        self.db.close()


@pytest.fixture
def kits(tmp_path, mosquitto):
    site = f"s{uuid.uuid4().hex[:8]}"  # the session broker is shared: a site of this test's own
    made: list[Kit] = []

    def make(kit_id: str, **kw) -> Kit:
        kit = Kit(tmp_path, mosquitto.port, kit_id, site, **kw)
        made.append(kit)
        return kit

    make.site = site  # type: ignore[attr-defined]
    yield make
    for kit in made:
        kit.close()


def test_a_second_feature_shares_alongside_checkin_each_with_its_own_chain(kits):
    a, b = kits("kitA"), kits("kitB")
    a.note("stage left is closed")
    assert a.admit("FIRST0001")["verdict"] == "admit"
    a.note("bar opens at 6")
    with a.db.transaction() as conn:
        a.ctx.ledger.append(conn, "memo.private", {"text": "not shared"})  # not a shared type: stays home
    wait_for(lambda: b.cursor("memo", "kitA") == 3 and b.cursor("checkin", "kitA") == 2, 10, what="both channels")
    assert [r[0] for r in b.db.query("SELECT text FROM memo_peer_notes ORDER BY origin_seq")] == \
        ["stage left is closed", "bar opens at 6"]
    assert b.db.scalar("SELECT verdict FROM checkin_peer_events WHERE origin_kit = 'kitA'") == "admit"
    # Each channel's prev chain skips the other feature's events of the same ledger.
    assert [tuple(r) for r in b.db.query("SELECT origin_seq, prev_seq FROM checkin_peer_events")] == [(2, 0)]
    assert {r[0]: r[1] for r in a.db.query("SELECT feature, published_seq FROM site_outbox")} == {"memo": 3, "checkin": 2}
    assert b.db.scalar("SELECT COUNT(*) FROM events WHERE kit != 'kitB'") == 0  # never in B's own ledger
    # And back: B's door admission reaches A next to A's own.
    assert b.admit("SECOND001")["verdict"] == "admit"
    wait_for(lambda: a.cursor("checkin", "kitB") == 1, 10, what="B -> A")
    for kit in (a, b):
        assert verify(kit.db)[1] == []


def test_a_lost_message_is_noticed_by_prev_and_caught_up_for_that_feature_only(kits, caplog):
    a, b = kits("kitA"), kits("kitB")
    wait_for(lambda: "memo" in b.link._last_catchup and "memo" in a.link._last_catchup, 5, what="first catch-up")
    a.admit("CHECK0001")
    wait_for(lambda: b.cursor("checkin", "kitA") == 1, 10, what="a check-in shared")
    a.pumping.clear()
    time.sleep(0.2)
    lost = [a.note(f"note {i}") for i in range(3)]
    # The first two notes were published but lost on the way (a bridge dropping its queue does this).
    with a.db.transaction() as conn:
        conn.execute("INSERT OR REPLACE INTO site_outbox (feature, published_seq) VALUES ('memo', ?)", (lost[1],))
    caplog.set_level(logging.INFO, logger="fieldkit.sitelink")
    a.pumping.set()
    a.link.wake.set()
    # Only the third arrives live; its prev names the second, so B asks A for memo events and gets them.
    wait_for(lambda: b.cursor("memo", "kitA") == lost[2], 10, what="catch-up after the gap")
    assert b.db.scalar("SELECT COUNT(*) FROM memo_peer_notes") == 3
    assert any("event=peer_gap feature=memo origin=kitA" in r.getMessage() for r in caplog.records)
    assert any("event=catchup_answered feature=memo" in r.getMessage() for r in caplog.records)
    assert b.cursor("checkin", "kitA") == 1 and b.db.scalar("SELECT COUNT(*) FROM site_peer_pending") == 0


def test_a_kit_that_was_away_catches_up_on_every_channel_in_batches(kits):
    a = kits("kitA")
    notes = [a.note(f"n{i}") for i in range(520)]  # more than one answer batch
    a.admit("AWAY00001")
    wait_for(lambda: a.link.published_seq("checkin") == notes[-1] + 1, 10, what="A published")
    b = kits("kitB")  # nothing is retained: only catch-up can tell B
    wait_for(lambda: b.cursor("memo", "kitA") == notes[-1] and b.cursor("checkin", "kitA") == notes[-1] + 1, 20,
             what="catch-up of both channels")
    assert b.db.scalar("SELECT COUNT(*) FROM memo_peer_notes") == 520


def publish_raw(port: int, messages: list[tuple[str, bytes | str]]) -> None:
    """A hostile kit on the site: publishes whatever it likes, QoS 1, in order."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        for topic, body in messages:
            c.publish(topic, body, qos=1).wait_for_publish(5)
    finally:
        c.loop_stop()
        c.disconnect()


def good(seq: int, prev: int, hlc: int, **changes) -> dict:
    msg = {"origin_kit": "evil", "seq": seq, "prev": prev, "id": str(uuid.uuid4()), "type": "memo.note", "hlc": hlc,
           "payload": {"text": "hello"}}
    msg.update(changes)
    return msg


def test_every_hostile_peer_message_is_refused_and_nothing_is_stored(kits, mosquitto, caplog):
    b = kits("kitB")
    site = kits.site
    now_hlc = int(time.time() * 1000) << HLC_COUNTER_BITS
    memo, checkin = f"fieldkit/site/{site}/memo/evil", f"fieldkit/site/{site}/checkin/evil"
    scan = {"verdict": "admit", "ticket_key": "k1", "admitted": True}
    hostile = [
        (memo, good(1, 0, now_hlc, origin_kit="site")),
        (f"fieldkit/site/{site}/memo/site", good(1, 0, now_hlc, origin_kit="site")),
        (memo, good(1, 0, now_hlc, origin_kit="e" * 33)),
        (memo, good(1, 0, now_hlc, origin_kit="kitA")),  # the topic names another kit
        (memo, good(1, 0, now_hlc, origin_kit="kitB")),
        (memo, good(True, 0, now_hlc)),
        (memo, good(-1, 0, now_hlc)),
        (memo, good(1 << 53, 0, now_hlc)),
        (memo, good(1.5, 0, now_hlc)),
        (memo, good("1", 0, now_hlc)),
        (memo, good(3, 3, now_hlc)),
        (memo, good(1, 0, (1 << 63) - 1)),  # the clock-breaker
        (memo, good(1, 0, 1 << 64)),
        (memo, good(1, 0, -5)),
        (memo, good(1, 0, False)),
        (memo, good(1, 0, now_hlc + ((10 * 60 * 1000) << HLC_COUNTER_BITS))),  # ten minutes ahead
        (memo, good(1, 0, now_hlc, type="pos.sale")),
        (checkin, good(1, 0, now_hlc, type="checkin.mode", payload=scan)),  # check-in's, but not shared
        (memo, good(1, 0, now_hlc, id="z9")),
        (memo, good(1, 0, now_hlc, id=123)),
        (memo, good(1, 0, now_hlc, payload=["text"])),
        (memo, good(1, 0, now_hlc, payload="text")),
        (memo, good(1, 0, now_hlc, payload={"text": 7})),  # the feature's own validator
        (checkin, good(1, 0, now_hlc, type="checkin.scanned", payload={**scan, "ticket_key": 7})),
        (checkin, good(1, 0, now_hlc, type="checkin.scanned", payload={**scan, "admitted": "yes"})),
        (checkin, good(1, 0, now_hlc, type="checkin.scanned", payload={**scan, "at": 1e300})),
        (checkin, good(1, 0, now_hlc, type="checkin.scanned", payload={"ticket_key": "k1"})),
        (checkin, good(1, 0, now_hlc, type="checkin.undone", payload={"ticket_key": "k1"})),
        (f"fieldkit/site/{site}/catchup/memo/evil", {"from": "other", "cursors": {}}),
        (f"fieldkit/site/{site}/catchup/memo/evil", {"from": "evil", "cursors": []}),
        (f"fieldkit/site/{site}/catchup/memo/evil", {"from": "evil", "cursors": {"kitB": -1}}),
        (f"fieldkit/site/{site}/catchup/memo/evil", {"from": "evil", "cursors": {"kitB": True}}),
        (f"fieldkit/site/{site}/catchup/memo/evil", {"from": "evil", "cursors": {f"k{i}": 0 for i in range(1001)}}),
    ]
    before = b.held()
    caplog.set_level(logging.WARNING, logger="fieldkit.sitelink")
    too_big = good(1, 0, now_hlc, payload={"text": "x" * 70_000})  # over 64 KiB: the bus or the link drops it
    sentinel = good(1, 0, now_hlc, id="sentinel-last")  # refused too; once it is, every message before it is
    publish_raw(mosquitto.port, [(memo, b"not json"), (memo, bytes(range(256))), (memo, json.dumps(too_big))]
                + [(t, json.dumps(m)) for t, m in hostile] + [(memo, json.dumps(sentinel))])

    def refusals() -> list[str]:
        return [r.getMessage() for r in caplog.records if "event=peer_refused" in r.getMessage()]

    wait_for(lambda: any("sentinel-last" in line for line in refusals()), 10, what="every hostile message handled")
    assert b.held() == before, "a refused message stored something"
    counted = [line for line in refusals() if "reason=too_large " not in line and "sentinel-last" not in line]
    assert len(counted) == len(hostile), counted
    for reason in ("bad_origin", "origin_mismatch", "bad_seq", "bad_hlc", "hlc_ahead",
                   "bad_type", "bad_id", "bad_payload", "payload_text", "payload_ticket_key", "payload_admitted",
                   "payload_at", "payload_verdict", "payload_scan_event_id", "from_mismatch", "bad_cursors"):
        assert any(f"reason={reason} " in line for line in counted), reason
    with pytest.raises(PeerRefused, match="too_large"):
        b.link.check("memo", too_big, topic_kit="evil")
    # The kit keeps recording, its clock did not jump, and a well-formed peer is still heard.
    assert b.admit("AFTER0001")["verdict"] == "admit"
    last_hlc = b.db.scalar("SELECT MAX(hlc) FROM events")
    assert abs((last_hlc >> HLC_COUNTER_BITS) / 1000 - time.time()) < 60
    publish_raw(mosquitto.port, [(memo, json.dumps(good(1, 0, now_hlc)))])
    wait_for(lambda: b.cursor("memo", "evil") == 1, 10, what="a good message after the bad ones")
    assert verify(b.db)[1] == []


def test_a_peer_clock_near_the_end_of_the_range_is_dropped_and_one_minute_ahead_is_kept(kits, mosquitto):
    b = kits("kitB")
    topic = f"fieldkit/site/{kits.site}/memo/evil"
    publish_raw(mosquitto.port, [(topic, json.dumps(good(1, 0, (1 << 63) - 1)))])
    wait_for(lambda: b.link.refused == 1, 10, what="the clock-breaker refused")
    for _ in range(3):  # before the fix the second append here overflowed
        b.note("still recording")
    hlcs = [r[0] for r in b.db.query("SELECT hlc FROM events ORDER BY seq")]
    assert hlcs == sorted(hlcs) and abs((hlcs[-1] >> HLC_COUNTER_BITS) / 1000 - time.time()) < 60

    minute_ahead = int((time.time() + 60) * 1000) << HLC_COUNTER_BITS
    publish_raw(mosquitto.port, [(topic, json.dumps(good(1, 0, minute_ahead)))])
    wait_for(lambda: b.cursor("memo", "evil") == 1, 10, what="a peer one minute ahead")
    assert b.note("after the merge") and b.db.scalar("SELECT MAX(hlc) FROM events") > minute_ahead
    assert verify(b.db)[1] == []

    # No other caller can push the clock either: the ledger itself refuses.
    with pytest.raises(ClockAheadError), b.db.transaction() as conn:
        b.ctx.ledger.observe(conn, (1 << 63) - 1)
    with pytest.raises(ValueError), b.db.transaction() as conn:
        b.ctx.ledger.observe(conn, 1 << 64)


def test_an_upgraded_kit_keeps_checkins_cursors_and_outbox_mark(tmp_path):
    from checkin.migrations import MIGRATIONS as CHECKIN

    db = Database(tmp_path / "kit.db")
    old = [MigrationSet("kit", [m for m in CORE.migrations if m.name != "0004_site_link"]),
           MigrationSet("checkin", CHECKIN.migrations[:1])]
    apply_migrations(db, old)
    with db.transaction() as conn:
        conn.execute("INSERT INTO checkin_peer_cursor VALUES ('doorA', 41, 1700000000.0)")
        conn.execute("INSERT INTO checkin_site_outbox VALUES (1, 17)")
        conn.execute("INSERT INTO checkin_peer_events (origin_kit, origin_seq, prev_seq, event_id, type, hlc, at,"
                     " payload, received_at) VALUES ('doorA', 45, 44, 'e45', 'checkin.scanned', 1, 0, '{}', 0)")
    applied = apply_migrations(db, all_migration_sets())
    assert ("kit", "0004_site_link") in applied and ("checkin", "0002_site_link") in applied
    assert tuple(db.query_one("SELECT feature, highest_seq, last_seen FROM site_peer_cursor")) == ("checkin", 41, 1700000000.0)
    assert db.scalar("SELECT published_seq FROM site_outbox WHERE feature = 'checkin'") == 17
    assert tuple(db.query_one("SELECT origin_kit, seq, prev_seq FROM site_peer_pending")) == ("doorA", 45, 44)
    assert not db.scalar("SELECT COUNT(*) FROM sqlite_master WHERE name IN ('checkin_peer_cursor', 'checkin_site_outbox')")


def test_a_peer_that_asks_again_and_again_is_answered_once_a_second(kits, mosquitto):
    a = kits("kitA")
    notes = [a.note(f"n{i}") for i in range(50)]
    wait_for(lambda: a.link.published_seq("memo") == notes[-1], 10, what="A published")
    seen: list[int] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2)
    c.on_message = lambda _c, _u, m: seen.append(json.loads(m.payload)["seq"])
    c.connect("127.0.0.1", mosquitto.port)
    c.subscribe(f"fieldkit/site/{kits.site}/memo/kitA", qos=1)
    c.loop_start()
    try:
        time.sleep(0.3)
        ask = json.dumps({"from": "evil", "cursors": {}})
        publish_raw(mosquitto.port, [(f"fieldkit/site/{kits.site}/catchup/memo/evil", ask)] * 200)
        wait_for(lambda: len(seen) >= 50, 10, what="one answer")
        time.sleep(1.5)
        # 200 requests from seq 0 in a burst: answered about once a second, not 200 times 50 events.
        assert len(seen) <= 150, len(seen)
        assert a.link.catchups_dropped >= 150
        # A request after the interval is answered again in full: nothing legitimate is lost.
        before = len(seen)
        publish_raw(mosquitto.port, [(f"fieldkit/site/{kits.site}/catchup/memo/evil", ask)])
        wait_for(lambda: len(seen) >= before + 50, 10, what="a later request answered")
    finally:
        c.loop_stop()
        c.disconnect()
