"""One site link for every feature: a feature's ledger events shared with the other kits of the site.

A feature registers a :class:`Channel` (its name, which of its ledger event types it shares, a
validator for a peer's event and a store callback). The link then

- publishes this kit's shared events on ``fieldkit/site/<site>/<feature>/<kit>`` (QoS 1), each with
  ``prev``, the seq of this kit's previous event of that channel, so a receiver can tell a lost message
  from the normal gaps of a ledger shared by several features;
- validates everything a peer sends before anything is stored (size, kit ids, ints, types, id, payload,
  an HLC not from the future, then the feature's own check); a refusal logs ``event=peer_refused`` and
  stores nothing;
- stores a peer event with the feature's callback, its HLC merged and the per-peer cursor (highest seq
  with no gap before it, ``site_peer_cursor``) moved, all in one transaction;
- asks for catch-up on ``fieldkit/site/<site>/catchup/<feature>/<kit>`` after a gap, a (re)connect of
  its bus or of a bridge, and every ``Channel.catchup_seconds``; it answers other kits' requests in
  batches from its service loop (``pump``), never on the MQTT network thread.

Peer events never enter this kit's ledger: the feature keeps them in its own peer table.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kit import topics
from kit.db import Database
from kit.event_codec import unpack
from kit.ledger import ClockAheadError, Ledger
from kit.sitepeer import MAX_EVENT_BYTES, PeerEvent, PeerRefused, check_catchup, check_event

__all__ = ["BATCH", "Channel", "PeerEvent", "PeerRefused", "SiteLink", "bridge_conf", "peer_cursors"]

log = logging.getLogger("fieldkit.sitelink")

BATCH = 500  # events published per channel per pump (new ones, or a catch-up answer); also stored per transaction
MAX_INBOX = 5000  # validated peer events waiting for the service loop to store them
MIN_CATCHUP_INTERVAL = 1.0  # seconds between two catch-up requests of one channel, however many gaps are seen
# A gap seen while events still pour in (an answer under way) is asked about once they pause, or after
# GAP_PATIENCE at the latest: asking with a cursor that lags what is in flight re-sends it all.
QUIET = 0.5
GAP_PATIENCE = 5.0
# A peer that asks again and again from seq 0 would make this kit re-send everything on every pump:
# one request per requester and channel per interval is answered, the rest dropped (it asks again).
ANSWER_INTERVAL = 1.0
REQUESTERS_KEPT = 1024
# Refusals are logged one line each up to this many a minute, then counted in one line per minute,
# so a hostile site member cannot fill the SD card with log lines.
REFUSALS_LOGGED_PER_MINUTE = 100
FEATURE_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# fieldkit/site/<site>/catchup/... is the link's own; mirror*/... the site mirror's (sync/mirror_proto.py)
RESERVED_FEATURES = ("catchup", "mirror", "mirror_ack", "mirror_hub", "mirror_ask", "mirror_restore", "mirror_doc")


@dataclass
class Channel:
    """What a feature shares with the site, and how it keeps what the other kits share.

    ``validate(event)`` returns why a peer's payload is refused (a short reason) or None.
    ``store(conn, event)`` keeps it in the feature's own peer table inside the link's transaction and
    returns a truthy value (handed to ``after_store`` once committed), or a falsy one if it already
    held the event. It may raise PeerRefused; the transaction is then rolled back.
    """

    feature: str
    types: tuple[str, ...]
    validate: Callable[[PeerEvent], str | None]
    store: Callable[[sqlite3.Connection, PeerEvent], Any]
    after_store: Callable[[PeerEvent, Any], None] | None = None
    catchup_seconds: float = 15.0

    def __post_init__(self) -> None:
        if not FEATURE_RE.match(self.feature) or self.feature in RESERVED_FEATURES:
            raise ValueError(f"channel name {self.feature!r}: lower-case letters, digits and '_', not one of "
                             f"{', '.join(RESERVED_FEATURES)}")
        if not self.types or not all(t.startswith(self.feature + ".") for t in self.types):
            raise ValueError(f"channel {self.feature}: shared types must be the feature's own ({self.feature}.*)")
        self.types = tuple(self.types)


def bridge_conf(site: str, kit: str, hub_host: str, hub_port: int, username: str = "", password: str = "") -> str:
    """Mosquitto lines that bridge this kit's broker to the hub kit's for the site's topics, both ways."""
    lines = [
        f"connection fieldkit-site-{kit}",
        f"address {hub_host}:{hub_port}",
        f"topic {topics.site_tree(site)} both 1",
        f"remote_clientid fieldkit-bridge-{kit}",
        # Queued bridge messages are lost in several known cases anyway; catch-up fills every gap.
        "cleansession true",
        "try_private true",
        "restart_timeout 1 5",
        "keepalive_interval 5",
    ]
    if username:
        lines += [f"remote_username {username}", f"remote_password {password}"]
    return "\n".join(lines) + "\n"


def peer_cursors(conn: sqlite3.Connection, feature: str) -> list[dict]:
    """Per peer kit: the highest seq of the feature held with no gap before it, and when it was last heard."""
    return [dict(r) for r in conn.execute(
        "SELECT origin_kit AS kit, highest_seq, last_seen FROM site_peer_cursor WHERE feature = ? ORDER BY origin_kit",
        (feature,))]


class SiteLink:
    def __init__(self, db: Database, ledger: Ledger, bus, site: str, kit: str):
        self.db, self.ledger, self.bus = db, ledger, bus
        self.site, self.kit = site, kit
        self.channels: dict[str, Channel] = {}
        self.wake = threading.Event()
        self._lock = threading.Lock()  # guards the two dicts below (written on the network thread)
        self._want_catchup: set[str] = set()
        self._answer_after: dict[str, int] = {}  # feature -> publish our events after this seq (catch-up)
        self._last_catchup: dict[str, float] = {}
        self._last_arrival: dict[str, float] = {}
        self._publish_lock = threading.Lock()
        self._inbox: list[PeerEvent] = []  # checked on the network thread, stored by pump()
        self._seen_connects = -1
        self.refused = 0
        self.catchups_dropped = 0
        self._answered_at: dict[tuple[str, str], float] = {}
        self._refusal_window = (0.0, 0, 0)  # (window start, lines logged, lines suppressed)

    # -- wiring ----------------------------------------------------------------------------------
    def register(self, channel: Channel) -> Channel:
        if channel.feature in self.channels:
            raise ValueError(f"channel {channel.feature} is registered already")
        self.channels[channel.feature] = channel
        return channel

    def start(self) -> None:
        # A bus that can drop a body over the limit unread is given it; the link re-measures anyway.
        limit = {"max_bytes": MAX_EVENT_BYTES} if "max_bytes" in inspect.signature(self.bus.subscribe).parameters else {}
        for feature in self.channels:
            self.bus.subscribe(topics.site_events(self.site, feature, "+"), self.on_peer_message, qos=1, **limit)
            self.bus.subscribe(topics.site_catchup(self.site, feature, "+"), self.on_catchup_request, qos=1, **limit)
        # A bridge coming back up (Mosquitto announces it locally) is the moment to catch up.
        self.bus.subscribe("$SYS/broker/connection/+/state", self._on_bridge_state)
        self.ask_catchup()

    def ask_catchup(self, feature: str | None = None) -> None:
        with self._lock:
            self._want_catchup.update([feature] if feature else self.channels)
        self.wake.set()

    def wants_catchup(self, feature: str) -> bool:
        with self._lock:
            return feature in self._want_catchup

    def _on_bridge_state(self, _topic: str, msg: dict) -> None:
        if msg.get("value") == 1:
            self.ask_catchup()

    # -- the service loop's part -------------------------------------------------------------------
    def pump(self) -> int:
        """Store what peers sent, publish what is pending, answer catch-up one batch at a time, ask when due.

        Call it from the feature's service loop; returns the number of messages published. A busy
        database defers the work to the next call (the ledger keeps everything; catch-up brings back
        what peers sent meanwhile).
        """
        self.store_received()
        if not self.bus.is_connected:
            return 0
        if self.bus.connects != self._seen_connects:  # our own bus (re)connected: we may have missed events
            self._seen_connects = self.bus.connects
            self.ask_catchup()
        sent = 0
        now = time.monotonic()
        for feature, channel in self.channels.items():
            try:
                sent += self.publish_pending(feature)
                sent += self._answer_batch(feature)
                since = now - self._last_catchup.get(feature, -1e9)
                settled = now - self._last_arrival.get(feature, -1e9) >= QUIET or since >= GAP_PATIENCE
                if since >= channel.catchup_seconds or (self.wants_catchup(feature) and since >= MIN_CATCHUP_INTERVAL
                                                        and settled):
                    self.request_catchup(feature)
                    self._last_catchup[feature] = now
            except sqlite3.Error as e:
                log.warning("event=site_share_deferred feature=%s error=%r", feature, str(e))
        return sent

    def wait(self, timeout: float) -> None:
        self.wake.wait(timeout)
        self.wake.clear()

    # -- out -------------------------------------------------------------------------------------
    def _shared_after(self, channel: Channel, after: int, limit: int = BATCH) -> list[dict]:
        marks = ",".join("?" * len(channel.types))
        rows = self.db.query(f"SELECT seq, id, type, hlc, payload FROM events WHERE seq > ? AND type IN ({marks})"
                             " ORDER BY seq LIMIT ?", (after, *channel.types, limit))
        if not rows:
            return []
        prev = self.db.scalar(f"SELECT COALESCE(MAX(seq), 0) FROM events WHERE seq <= ? AND type IN ({marks})",
                              (after, *channel.types))
        out = []
        for row in rows:
            out.append({"origin_kit": self.kit, "seq": row["seq"], "prev": prev, "id": row["id"], "type": row["type"],
                        "hlc": row["hlc"], "payload": json.loads(unpack(row["payload"]))})
            prev = row["seq"]
        return out

    def _publish(self, feature: str, messages: list[dict]) -> None:
        topic = topics.site_events(self.site, feature, self.kit)
        for m in messages:
            self.bus.publish(topic, m, qos=1)

    def published_seq(self, feature: str) -> int:
        return self.db.scalar("SELECT published_seq FROM site_outbox WHERE feature = ?", (feature,)) or 0

    def publish_pending(self, feature: str) -> int:
        """Publish this kit's shared events of one channel not yet sent; the outbox cursor follows."""
        channel = self.channels[feature]
        with self._publish_lock:
            messages = self._shared_after(channel, self.published_seq(feature))
            if not messages:
                return 0
            self._publish(feature, messages)
            with self.db.transaction() as conn:
                conn.execute("INSERT INTO site_outbox (feature, published_seq) VALUES (?, ?) ON CONFLICT(feature)"
                             " DO UPDATE SET published_seq = excluded.published_seq", (feature, messages[-1]["seq"]))
            if len(messages) == BATCH:
                self.wake.set()  # more to send: come back at once
            return len(messages)

    def _answer_batch(self, feature: str) -> int:
        with self._lock:
            after = self._answer_after.pop(feature, None)
        if after is None:
            return 0
        batch = self._shared_after(self.channels[feature], after)
        self._publish(feature, batch)
        with self._lock:
            # The rest of this answer, and any request that arrived meanwhile: continue from the lower mark.
            marks = [m for m in (self._answer_after.get(feature), batch[-1]["seq"] if len(batch) == BATCH else None)
                     if m is not None]
            if marks:
                self._answer_after[feature] = min(marks)
                self.wake.set()
        if batch:
            log.info("event=catchup_answered feature=%s events=%d after=%d", feature, len(batch), after)
        return len(batch)

    def request_catchup(self, feature: str) -> None:
        with self._lock:
            self._want_catchup.discard(feature)
        cursors = {r[0]: r[1] for r in self.db.query(
            "SELECT origin_kit, highest_seq FROM site_peer_cursor WHERE feature = ?", (feature,))}
        self.bus.publish(topics.site_catchup(self.site, feature, self.kit), {"from": self.kit, "cursors": cursors}, qos=1)

    def on_catchup_request(self, topic: str, msg: dict) -> None:
        feature, requester = _catchup_topic_parts(topic)
        if requester == self.kit:
            return  # our own request, back from the broker
        try:
            if feature not in self.channels:
                raise PeerRefused("unknown_feature")
            after = check_catchup(msg, requester, self.kit)
        except PeerRefused as e:
            self._refused(feature, requester, topic, e.reason, detail=str(e), kind="catchup")
            return
        now = time.monotonic()
        with self._lock:
            key = (feature, requester)
            if now - self._answered_at.get(key, -1e9) < ANSWER_INTERVAL:
                self.catchups_dropped += 1
                return
            if len(self._answered_at) >= REQUESTERS_KEPT:
                self._answered_at.clear()  # only ever full under a flood of invented kit ids
            self._answered_at[key] = now
            self._answer_after[feature] = min(self._answer_after.get(feature, after), after)
        self.wake.set()

    # -- in --------------------------------------------------------------------------------------
    def on_peer_message(self, topic: str, msg: dict) -> None:
        """The bus handler of ``fieldkit/site/<site>/<feature>/+``: check now, store on the service loop.

        Runs on the MQTT network thread, so it never waits for the database: a slow disk cannot stall
        the bus, and many events arriving at once (a catch-up) are stored a batch per transaction.
        """
        parts = topic.split("/")
        feature, topic_kit = (parts[-2], parts[-1]) if len(parts) >= 2 else ("?", "?")
        if topic_kit == self.kit:
            return  # our own event, back from the broker
        event = self._checked(feature, msg, topic_kit, topic)
        if event is None:
            return
        self._last_arrival[feature] = time.monotonic()
        with self._lock:
            full = len(self._inbox) >= MAX_INBOX
            if full:
                self._want_catchup.add(feature)  # the cursor stays behind it: catch-up brings it again
            else:
                self._inbox.append(event)
        if full:
            log.warning("event=peer_deferred feature=%s origin=%s seq=%d reason=inbox_full", feature,
                        event.origin_kit, event.seq)
        self.wake.set()

    def receive(self, feature: str, msg: dict, *, topic_kit: str | None = None, topic: str = "") -> bool:
        """Check and keep one peer message now; True if it was new. Never raises for bad input."""
        event = self._checked(feature, msg, topic_kit, topic)
        return bool(event and self._store_batch([event]))

    def _checked(self, feature: str, msg: dict, topic_kit: str | None, topic: str) -> PeerEvent | None:
        origin = msg.get("origin_kit") if isinstance(msg, dict) else None
        try:
            return self.check(feature, msg, topic_kit=topic_kit)
        except PeerRefused as e:
            self._refused(feature, origin, topic, e.reason, detail=str(e))
        except Exception:  # a bug in a feature's validator must not stop the bus's network thread
            self.refused += 1
            log.exception("event=peer_refused feature=%s origin=%r topic=%s reason=internal_error", feature,
                          str(origin)[:40], topic[:200])
        return None

    def check(self, feature: str, msg: dict, *, topic_kit: str | None = None) -> PeerEvent:
        """The PeerEvent in a peer's message, or PeerRefused saying what is wrong with it."""
        channel = self.channels.get(feature)
        if channel is None:
            raise PeerRefused("unknown_feature")
        event = check_event(msg, feature, channel.types, own_kit=self.kit, ledger=self.ledger, topic_kit=topic_kit)
        why = channel.validate(event)
        if why:
            raise PeerRefused(why if why.startswith("payload") else f"payload_{why}")
        return event

    def store_received(self) -> int:
        """Store the peer events the network thread has checked, a batch per transaction; how many were new."""
        stored = 0
        while True:
            with self._lock:
                batch, self._inbox[:BATCH] = self._inbox[:BATCH], []
            if not batch:
                return stored
            try:
                stored += self._store_batch(batch)
            except sqlite3.Error as e:  # busy database: not stored, cursors stay, catch-up brings them again
                log.warning("event=peer_store_deferred events=%d error=%r", len(batch), str(e))
                for feature in {e.feature for e in batch}:
                    self.ask_catchup(feature)
                return stored

    def _store_batch(self, events: list[PeerEvent]) -> int:
        """Keep events in one transaction, each in a savepoint so one refused by its feature drops alone."""
        done: list[tuple[PeerEvent, Any]] = []
        gaps: dict[tuple[str, str], tuple[int, int]] = {}
        with self.db.transaction() as conn:
            for event in events:
                conn.execute("SAVEPOINT peer_event")
                try:
                    result, cursor = self._store_one(conn, event)
                except (PeerRefused, ClockAheadError) as e:
                    conn.execute("ROLLBACK TO peer_event")
                    self._refused(event.feature, event.origin_kit, "", getattr(e, "reason", "hlc_ahead"), str(e))
                    continue
                except sqlite3.Error:
                    raise
                except Exception:  # a bug in a feature's store: that event is not kept, the rest are
                    conn.execute("ROLLBACK TO peer_event")
                    self.refused += 1
                    log.exception("event=peer_refused feature=%s origin=%s seq=%d reason=internal_error",
                                  event.feature, event.origin_kit, event.seq)
                    continue
                finally:
                    conn.execute("RELEASE peer_event")
                if cursor is None:
                    continue  # held already
                key = (event.feature, event.origin_kit)
                gaps[key] = (cursor, max(event.seq, gaps.get(key, (0, 0))[1]))
                if result:
                    done.append((event, result))
        for (feature, origin), (cursor, got) in gaps.items():
            if cursor < got:
                log.info("event=peer_gap feature=%s origin=%s have=%d got=%d", feature, origin, cursor, got)
                self.ask_catchup(feature)
        for event, result in done:
            after_store = self.channels[event.feature].after_store
            if after_store:
                try:
                    after_store(event, result)
                except Exception:
                    log.exception("event=peer_after_store_failed feature=%s origin=%s seq=%d", event.feature,
                                  event.origin_kit, event.seq)
        return len(done)

    def _store_one(self, conn: sqlite3.Connection, event: PeerEvent) -> tuple[Any, int | None]:
        """(the channel's result, the peer's cursor now); cursor None when the event was held already."""
        key = (event.feature, event.origin_kit)
        row = conn.execute("SELECT highest_seq FROM site_peer_cursor WHERE feature = ? AND origin_kit = ?",
                           key).fetchone()
        cursor = row[0] if row else 0
        if event.seq <= cursor or conn.execute(
                "SELECT 1 FROM site_peer_pending WHERE feature = ? AND origin_kit = ? AND seq = ?",
                (*key, event.seq)).fetchone():
            return None, None  # held already (a catch-up answer to another kit, a QoS 1 repeat)
        result = self.channels[event.feature].store(conn, event)
        self.ledger.observe(conn, event.hlc)
        conn.execute("INSERT INTO site_peer_pending (feature, origin_kit, seq, prev_seq) VALUES (?,?,?,?)",
                     (*key, event.seq, event.prev))
        while nxt := conn.execute(
                "SELECT seq FROM site_peer_pending WHERE feature = ? AND origin_kit = ? AND prev_seq = ? AND seq > ?"
                " ORDER BY seq LIMIT 1", (*key, cursor, cursor)).fetchone():
            cursor = nxt[0]
        conn.execute("DELETE FROM site_peer_pending WHERE feature = ? AND origin_kit = ? AND seq <= ?", (*key, cursor))
        conn.execute("INSERT INTO site_peer_cursor (feature, origin_kit, highest_seq, last_seen) VALUES (?,?,?,?)"
                     " ON CONFLICT(feature, origin_kit) DO UPDATE SET highest_seq = excluded.highest_seq,"
                     " last_seen = excluded.last_seen", (*key, cursor, time.time()))
        return result, cursor

    def _refused(self, feature: str, origin: object, topic: str, reason: str, detail: str = "",
                 kind: str = "event") -> None:
        self.refused += 1
        now = time.monotonic()
        start, logged, suppressed = self._refusal_window
        if now - start >= 60:
            if suppressed:
                log.warning("event=peer_refusals_suppressed count=%d seconds=60 reason=too many to log each", suppressed)
            start, logged, suppressed = now, 0, 0
        if logged >= REFUSALS_LOGGED_PER_MINUTE:
            self._refusal_window = (start, logged, suppressed + 1)
            return
        self._refusal_window = (start, logged + 1, suppressed)
        log.warning("event=peer_refused feature=%s origin=%r topic=%s kind=%s reason=%s detail=%r", feature,
                    str(origin)[:40] if origin is not None else None, topic[:200], kind, reason, detail[:200])


def _catchup_topic_parts(topic: str) -> tuple[str, str]:
    parts = topic.split("/")  # fieldkit/site/<site>/catchup/<feature>/<kit>
    return (parts[-2], parts[-1]) if len(parts) >= 6 else ("?", "?")
