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
from kit.ledger import HLC_MAX, ClockAheadError, Ledger

log = logging.getLogger("fieldkit.sitelink")

MAX_EVENT_BYTES = 64 * 1024  # one shared event, as JSON
MAX_SEQ = 1 << 53  # seqs stay exact in every JSON parser
MAX_CATCHUP_CURSORS = 1000  # peers named in one catch-up request
BATCH = 500  # events published per channel per pump when answering a catch-up
KIT_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
FEATURE_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
RESERVED_KITS = ("site",)  # fieldkit/site/# is the site tree
RESERVED_FEATURES = ("catchup",)  # fieldkit/site/<site>/catchup/... is the link's own


class PeerRefused(ValueError):
    """A peer's message is not stored; ``reason`` is a short word for the log."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class PeerEvent:
    """One event of another kit, validated by the link (fields) and by the channel (payload)."""

    feature: str
    origin_kit: str
    seq: int
    prev: int
    id: str
    type: str
    hlc: int
    payload: dict

    def as_message(self) -> dict:
        return {"origin_kit": self.origin_kit, "seq": self.seq, "prev": self.prev, "id": self.id, "type": self.type,
                "hlc": self.hlc, "payload": self.payload}


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
            raise ValueError(f"channel name {self.feature!r}: lower-case letters, digits and '_', not 'catchup'")
        if not self.types or not all(t.startswith(self.feature + ".") for t in self.types):
            raise ValueError(f"channel {self.feature}: shared types must be the feature's own ({self.feature}.*)")
        self.types = tuple(self.types)


def valid_kit_id(value: object) -> bool:
    return isinstance(value, str) and bool(KIT_RE.match(value)) and value not in RESERVED_KITS


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_SEQ


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
        self._publish_lock = threading.Lock()
        self._seen_connects = -1
        self.refused = 0

    # -- wiring ----------------------------------------------------------------------------------
    def register(self, channel: Channel) -> Channel:
        if channel.feature in self.channels:
            raise ValueError(f"channel {channel.feature} is registered already")
        self.channels[channel.feature] = channel
        return channel

    def start(self) -> None:
        for feature in self.channels:
            self.bus.subscribe(topics.site_events(self.site, feature, "+"), self.on_peer_message, qos=1)
            self.bus.subscribe(topics.site_catchup(self.site, feature, "+"), self.on_catchup_request, qos=1)
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
        """Publish what is pending, answer catch-up requests one batch at a time, ask when due.

        Call it from the feature's service loop; returns the number of messages published. A busy
        database defers the work to the next call (the ledger keeps everything).
        """
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
                due = now - self._last_catchup.get(feature, -1e9) >= channel.catchup_seconds
                if due or self.wants_catchup(feature):
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
                        "hlc": row["hlc"], "payload": json.loads(row["payload"])})
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
            after = self._check_catchup(topic, feature, requester, msg)
        except PeerRefused as e:
            self._refused(feature, requester, topic, e.reason, kind="catchup")
            return
        with self._lock:
            self._answer_after[feature] = min(self._answer_after.get(feature, after), after)
        self.wake.set()

    def _check_catchup(self, topic: str, feature: str, requester: str, msg: dict) -> int:
        if feature not in self.channels:
            raise PeerRefused("unknown_feature")
        _check_size(msg)
        if not valid_kit_id(requester):
            raise PeerRefused("bad_topic_kit")
        if msg.get("from") != requester:
            raise PeerRefused("from_mismatch", "the topic's kit must be the request's 'from'")
        cursors = msg.get("cursors")
        if not isinstance(cursors, dict) or len(cursors) > MAX_CATCHUP_CURSORS:
            raise PeerRefused("bad_cursors")
        after = cursors.get(self.kit, 0)
        if not _is_count(after):
            raise PeerRefused("bad_cursors", f"cursor for {self.kit} is {after!r:.40}")
        return after

    # -- in --------------------------------------------------------------------------------------
    def on_peer_message(self, topic: str, msg: dict) -> None:
        """The bus handler of ``fieldkit/site/<site>/<feature>/+``: validate, then store."""
        parts = topic.split("/")
        feature, topic_kit = (parts[-2], parts[-1]) if len(parts) >= 2 else ("?", "?")
        if topic_kit == self.kit:
            return  # our own event, back from the broker
        self.receive(feature, msg, topic_kit=topic_kit, topic=topic)

    def receive(self, feature: str, msg: dict, *, topic_kit: str | None = None, topic: str = "") -> bool:
        """Validate and keep one peer message; True if it was new. Never raises for bad input."""
        origin = msg.get("origin_kit") if isinstance(msg, dict) else None
        try:
            event = self.check(feature, msg, topic_kit=topic_kit)
            return self._store(event)
        except PeerRefused as e:
            self._refused(feature, origin, topic, e.reason, detail=str(e))
        except ClockAheadError as e:  # the clock moved between the check and the store; still refused
            self._refused(feature, origin, topic, "hlc_ahead", detail=str(e))
        except sqlite3.Error as e:  # busy database: not stored, the cursor stays, catch-up brings it again
            log.warning("event=peer_store_deferred feature=%s origin=%r error=%r", feature, origin, str(e))
            self.ask_catchup(feature)
        except Exception:  # a bug in a feature's callback must not stop the bus's network thread
            log.exception("event=peer_refused feature=%s origin=%r topic=%s reason=internal_error", feature, origin,
                          topic)
            self.refused += 1
        return False

    def check(self, feature: str, msg: dict, *, topic_kit: str | None = None) -> PeerEvent:
        """The PeerEvent in a peer's message, or PeerRefused saying what is wrong with it."""
        channel = self.channels.get(feature)
        if channel is None:
            raise PeerRefused("unknown_feature")
        if not isinstance(msg, dict):
            raise PeerRefused("not_an_object")
        _check_size(msg)
        origin = msg.get("origin_kit")
        if not valid_kit_id(origin):
            raise PeerRefused("bad_origin", f"{origin!r:.40}")
        if topic_kit is not None and topic_kit != origin:
            raise PeerRefused("origin_mismatch", "the topic's kit must be the message's origin_kit")
        if origin == self.kit:
            raise PeerRefused("own_kit", "a message in this kit's name from elsewhere")
        seq, prev, hlc = msg.get("seq"), msg.get("prev"), msg.get("hlc")
        if not (_is_count(seq) and _is_count(prev)) or prev >= seq:
            raise PeerRefused("bad_seq", f"seq={seq!r:.30} prev={prev!r:.30}")
        if not isinstance(hlc, int) or isinstance(hlc, bool) or not 0 <= hlc <= HLC_MAX:
            raise PeerRefused("bad_hlc", f"{hlc!r:.40}")
        ahead = self.ledger.clock_ahead_seconds(hlc)
        if ahead > self.ledger.max_clock_ahead_seconds:
            raise PeerRefused("hlc_ahead", f"peer clock {ahead:.0f} s ahead of ours (limit "
                                           f"{self.ledger.max_clock_ahead_seconds:.0f} s): check both kits' clocks")
        kind, event_id, payload = msg.get("type"), msg.get("id"), msg.get("payload")
        if kind not in channel.types:
            raise PeerRefused("bad_type", f"{kind!r:.60}")
        if not isinstance(event_id, str) or not UUID_RE.match(event_id):
            raise PeerRefused("bad_id", f"{event_id!r:.60}")
        if not isinstance(payload, dict):
            raise PeerRefused("bad_payload", "payload must be an object")
        event = PeerEvent(feature, origin, seq, prev, event_id, kind, hlc, payload)
        why = channel.validate(event)
        if why:
            raise PeerRefused(f"payload_{why}" if not why.startswith("payload") else why)
        return event

    def _store(self, event: PeerEvent) -> bool:
        channel = self.channels[event.feature]
        key = (event.feature, event.origin_kit)
        with self.db.transaction() as conn:
            row = conn.execute("SELECT highest_seq FROM site_peer_cursor WHERE feature = ? AND origin_kit = ?",
                               key).fetchone()
            cursor = row[0] if row else 0
            if event.seq <= cursor or conn.execute(
                    "SELECT 1 FROM site_peer_pending WHERE feature = ? AND origin_kit = ? AND seq = ?",
                    (*key, event.seq)).fetchone():
                return False  # held already (a catch-up answer to another kit, a QoS 1 repeat)
            result = channel.store(conn, event)
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
        if cursor < event.seq:
            log.info("event=peer_gap feature=%s origin=%s have=%d got=%d", event.feature, event.origin_kit, cursor,
                     event.seq)
            self.ask_catchup(event.feature)
        if result and channel.after_store:
            channel.after_store(event, result)
        return bool(result)

    def _refused(self, feature: str, origin: object, topic: str, reason: str, detail: str = "",
                 kind: str = "event") -> None:
        self.refused += 1
        log.warning("event=peer_refused feature=%s origin=%r topic=%s kind=%s reason=%s detail=%r", feature,
                    str(origin)[:40] if origin is not None else None, topic[:200], kind, reason, detail[:200])


def _check_size(msg: dict) -> None:
    # The bus has parsed it already; re-encoding measures it (and refuses nesting too deep to encode).
    try:
        size = len(json.dumps(msg, separators=(",", ":")).encode())
    except (ValueError, TypeError, RecursionError) as e:
        raise PeerRefused("unencodable", type(e).__name__) from None
    if size > MAX_EVENT_BYTES:
        raise PeerRefused("too_large", f"{size} bytes, limit {MAX_EVENT_BYTES}")


def _catchup_topic_parts(topic: str) -> tuple[str, str]:
    parts = topic.split("/")  # fieldkit/site/<site>/catchup/<feature>/<kit>
    return (parts[-2], parts[-1]) if len(parts) >= 6 else ("?", "?")
