"""This kit's ledger, copied to the site's mirrors as it is written (the hub, and ``site.mirror_peers``).

Every kit runs a sender; a mirror (sync/mirror_hub.py) acknowledges, per kit, the highest seq it holds
with the chain unbroken up to it. The sender publishes new events in batches under the broker's size
limit (QoS 1) and, when a mirror falls behind what was sent (a batch lost in a partition, a mirror
restarted), sends again from the lowest acknowledged seq: at once when a mirror reports a gap or a
bridge comes back, else after a wait that doubles while nothing moves. The acknowledged seq per
mirror is kept in ``sync_mirror_cursor``, so ``fieldkit mirror status`` and the dashboard read it.

A mirror's acknowledgement is retained. A kit whose ledger is empty but whose id a mirror holds
events of is a spare flashed with a dead kit's id: it holds its ledger (kit/ledger.py) until
``fieldkit restore --from-hub``, so it can never start a second chain of that id.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from kit.ledger import events_after, last_seq
from kit.ledger_hold import hold_reason, release_provisional_hold, set_hold
from kit.sitepeer import valid_kit_id
from sync import mirror_docs
from sync.mirror_proto import (
    MAX_BATCH_EVENTS,
    MirrorRefused,
    ack_topic,
    batch_topic,
    batches,
    check_ack,
    hub_topic,
    last_part,
)

log = logging.getLogger("fieldkit.sync.mirror")

MAX_PER_PUMP = 2000  # events published per pump; the loop comes back at once for the rest
RESEND_MIN, RESEND_MAX = 2.0, 30.0  # seconds without progress before sending again, doubling
MIN_REWIND_INTERVAL = 1.0
DOCS_EVERY = 2.0  # seconds between two looks for a new document version
SETTLE_SECONDS = 2.0  # after a mirror's announcement, its retained acknowledgement of us has come too


def mirror_state(db, now: float | None = None) -> dict:
    """What `fieldkit mirror status` shows: per mirror, the seq acknowledged and the lag behind the ledger."""
    now = time.time() if now is None else now
    last = last_seq(db)
    mirrors = []
    for r in db.query("SELECT mirror, upto, hq_upto, acked_at FROM sync_mirror_cursor ORDER BY mirror"):
        behind = max(0, last - r["upto"])
        oldest = db.scalar("SELECT wall_time FROM events WHERE seq = ?", (r["upto"] + 1,)) if behind else None
        lag = max(0.0, now - _epoch(oldest)) if oldest else 0.0
        mirrors.append({"mirror": r["mirror"], "upto": r["upto"], "behind": behind, "lag_seconds": round(lag, 3),
                        "hq_upto": r["hq_upto"], "acked_at": r["acked_at"]})
    return {"last_seq": last, "mirrors": mirrors, "hold": hold_reason(db.conn), "hq_holds_upto": hq_holds_upto(db)}


def mirror_summary(db) -> dict:
    """The mirror line of the dashboard's sync tile: the least-caught-up mirror, and any hold."""
    state = mirror_state(db)
    worst = max(state["mirrors"], key=lambda m: (m["behind"], m["lag_seconds"]), default=None)
    return {"mirrors": len(state["mirrors"]), "behind": worst["behind"] if worst else None,
            "lag_seconds": worst["lag_seconds"] if worst else None, "mirror": worst["mirror"] if worst else None,
            "hold": state["hold"]}


def hq_holds_upto(db) -> int:
    """Every seq up to this HQ holds: acknowledged to this kit's own uploads, or relayed by a site mirror."""
    own = db.scalar("SELECT COALESCE(MAX(cursor), 0) FROM sync_cursor") or 0
    relayed = db.scalar("SELECT COALESCE(MAX(hq_upto), 0) FROM sync_mirror_cursor") or 0
    return max(own, relayed)


def _epoch(wall: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(wall).timestamp()


class MirrorSender:
    def __init__(self, config, db, bus):
        self.config, self.db, self.bus = config, db, bus
        self.kit, self.site = config.kit_id, config.site
        self.peers = {p for p in (config["site.mirror_peers"] or []) if valid_kit_id(p) and p != self.kit}
        self.enabled = bool(config["site.mirror"])
        self.cursors: dict[str, int] = {r["mirror"]: r["upto"] for r in
                                        db.query("SELECT mirror, upto FROM sync_mirror_cursor")}
        self.live: set[str] = set(self.peers)  # mirrors heard of in this run (announced or acknowledging)
        self.sent = 0
        self._lock = threading.Lock()
        self._acks: deque[dict] = deque(maxlen=1000)
        self._announced: deque[str] = deque(maxlen=100)
        self._rewind_now = False
        self._progress_at = time.monotonic()
        self._resend_wait = RESEND_MIN
        self._last_rewind = 0.0
        self._prev_low = -1
        self._warned_ahead: set[str] = set()
        self.wake = threading.Event()
        self.refused = 0
        self._docs_sent: dict[str, int] = {}
        self._docs_at = 0.0
        self._heard_at: float | None = None  # when a mirror first announced itself in this run
        self._provisional_done = False

    def start(self) -> None:
        self.bus.subscribe(ack_topic(self.site, self.kit, "+"), self.on_ack, qos=1)
        self.bus.subscribe(hub_topic(self.site, "+"), self.on_hub, qos=1)
        self.bus.subscribe("$SYS/broker/connection/+/state", self._on_bridge_state)

    # -- network thread ------------------------------------------------------------------------
    def on_ack(self, topic: str, msg: dict) -> None:
        try:
            ack = check_ack(msg, self.kit, last_part(topic))
        except MirrorRefused as e:
            self.refused += 1
            log.warning("event=mirror_ack_refused topic=%s reason=%s detail=%r", topic[:200], e.reason, str(e)[:200])
            return
        ack["gap"] = msg.get("gap") is not None
        with self._lock:
            self._acks.append(ack)
        self.wake.set()

    def on_hub(self, topic: str, msg: dict) -> None:
        mirror = last_part(topic)
        if valid_kit_id(mirror) and mirror != self.kit and isinstance(msg, dict) and msg.get("mirror") == mirror:
            with self._lock:
                self._announced.append(mirror)
            self.wake.set()

    def _on_bridge_state(self, _topic: str, msg: dict) -> None:
        if msg.get("value") == 1:  # a bridge came back: what was sent meanwhile may be lost
            self._rewind_now = True
            self.wake.set()

    # -- the loop ------------------------------------------------------------------------------
    def take_acks(self) -> None:
        with self._lock:
            acks, self._acks = list(self._acks), deque(maxlen=1000)
            announced, self._announced = list(self._announced), deque(maxlen=100)
        if set(announced) - self.live or announced:
            self._docs_sent.clear()  # a mirror (re)started: it may lack our documents
        self.live.update(announced)
        if announced and self._heard_at is None:
            self._heard_at = time.monotonic()
        if not acks:
            self._release_if_not_mirrored()
            return
        last = last_seq(self.db)
        latest: dict[str, dict] = {}
        for ack in acks:
            latest[ack["mirror"]] = ack
            if ack["gap"]:
                self._rewind_now = True
        now = time.time()
        with self.db.transaction() as conn:
            for mirror, ack in latest.items():
                self.live.add(mirror)
                if ack["upto"] > last:
                    self._mirror_ahead(conn, mirror, ack["upto"], last)
                    continue
                conn.execute("INSERT INTO sync_mirror_cursor (mirror, upto, hq_upto, acked_at) VALUES (?, ?, ?, ?)"
                             " ON CONFLICT(mirror) DO UPDATE SET upto = excluded.upto, hq_upto = excluded.hq_upto,"
                             " acked_at = excluded.acked_at", (mirror, ack["upto"], ack["hq_upto"], now))
                self.cursors[mirror] = ack["upto"]
        if self._heard_at is None:
            self._heard_at = time.monotonic()
        self._release_if_not_mirrored()

    def _release_if_not_mirrored(self) -> None:
        """A mirror answered a while ago (its retained acknowledgement of us would have come with it) and
        none holds events of this kit: a provisional hold (kit/ledger.py) ends, the kit records."""
        if self._heard_at is None or self._provisional_done or time.monotonic() - self._heard_at < SETTLE_SECONDS:
            return
        self._provisional_done = True
        with self.db.transaction() as conn:
            if release_provisional_hold(conn):
                log.info("event=ledger_hold_released kit=%s reason=not_mirrored", self.kit)

    def _mirror_ahead(self, conn, mirror: str, upto: int, last: int) -> None:
        if last == 0:
            held = conn.execute("SELECT until FROM kit_ledger_hold WHERE id = 1").fetchone()
            if held is None or held[0] is not None:  # none yet, or a provisional one: this one stays
                reason = (f"the site's mirror on {mirror} holds {upto} events of kit {self.kit}: this is a spare with a "
                          "dead kit's id; restore it first (fieldkit restore --from-hub)")
                set_hold(conn, reason, time.time())
                log.warning("event=ledger_held kit=%s mirror=%s mirrored_upto=%d reason=spare_not_restored",
                            self.kit, mirror, upto)
        elif mirror not in self._warned_ahead:
            self._warned_ahead.add(mirror)
            log.warning("event=mirror_ahead kit=%s mirror=%s mirrored_upto=%d ledger=%d reason=%r", self.kit, mirror,
                        upto, last, "the mirror holds more of this kit than its ledger: another kit with this id?")

    def low(self) -> int:
        return min(self.cursors.get(m, 0) for m in self.live) if self.live else 0

    def pump(self) -> int:
        """Take acknowledgements, then publish what the mirrors lack; returns events published."""
        self.take_acks()
        if not self.enabled or not self.live or not self.bus.is_connected:
            return 0
        last = last_seq(self.db)
        low = self.low()
        now = time.monotonic()
        if self.sent <= low or low > self._prev_low:  # nothing outstanding, or the mirrors moved on
            self.sent = max(self.sent, low)
            self._progress_at, self._resend_wait = now, RESEND_MIN
            self._prev_low = low
        asked = self._rewind_now and now - self._last_rewind >= MIN_REWIND_INTERVAL
        if self.sent > low and (asked or now - self._progress_at >= self._resend_wait):
            log.info("event=mirror_resend kit=%s from=%d sent=%d", self.kit, low, self.sent)
            if not self._rewind_now:
                self._resend_wait = min(RESEND_MAX, self._resend_wait * 2)
            self.sent, self._progress_at, self._last_rewind = low, now, now
            self._rewind_now = False
        if now - self._docs_at >= DOCS_EVERY:
            self._docs_at = now
            self.publish_documents()
        published = 0
        while self.sent < last and published < MAX_PER_PUMP:
            records = [e.as_dict() for e in events_after(self.db, self.sent, MAX_BATCH_EVENTS)]
            if not records:
                break
            for batch in batches(records):
                self.bus.publish(batch_topic(self.site, self.kit), {"kit": self.kit, "site": self.site,
                                                                   "events": batch}, qos=1)
                published += len(batch)
                self.sent = batch[-1]["seq"]
        if published and self.sent < last:
            self.wake.set()
        return published

    def publish_documents(self) -> None:
        for doc in mirror_docs.current(self.db):
            if self._docs_sent.get(doc["kind"]) == doc["version"]:
                continue
            msg = mirror_docs.message(self.kit, self.site, doc)
            if msg:
                self.bus.publish(mirror_docs.doc_topic(self.site, self.kit), msg, qos=1)
            self._docs_sent[doc["kind"]] = doc["version"]

    def wait(self, timeout: float) -> None:
        self.wake.wait(timeout)
        self.wake.clear()
