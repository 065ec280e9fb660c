"""Doors that share what they saw: this kit's check-ins out to the site, the other kits' in.

Each kit publishes its ``checkin.scanned`` / ``checkin.undone`` events on
``fieldkit/site/<site>/checkin/<kit>`` (QoS 1), each carrying ``prev``: the seq of the kit's previous
shared event, so a receiver can tell a gap from the normal gaps of a ledger shared by features.
Received events go to ``checkin_peer_events`` keyed by (origin kit, origin seq), never to the own
ledger. Per peer the kit keeps the highest seq applied with no gap before it and asks for the rest on
``fieldkit/site/<site>/catchup/<kit>`` after a partition, a gap, or every ``checkin.catchup_seconds``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable

from checkin.scans import SHARED_TYPES
from checkin.validate import DoorRules, presence
from kit import topics
from kit.db import Database
from kit.ledger import Ledger

log = logging.getLogger("fieldkit.checkin.peers")
KIT_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
BATCH = 500


def bridge_conf(site: str, kit: str, hub_host: str, hub_port: int, username: str = "", password: str = "") -> str:
    """Mosquitto lines that bridge this kit's broker to the hub kit's for the site's topics, both ways."""
    lines = [
        f"connection fieldkit-site-{kit}",
        f"address {hub_host}:{hub_port}",
        f"topic fieldkit/site/{site}/# both 1",
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


def _shared_marks() -> str:
    return ",".join(f"'{t}'" for t in SHARED_TYPES)


class SiteLink:
    def __init__(self, db: Database, ledger: Ledger, rules: DoorRules, bus, site: str,
                 on_double: Callable[[dict], None] | None = None, on_stored: Callable[[dict], None] | None = None):
        self.db, self.ledger, self.rules, self.bus = db, ledger, rules, bus
        self.site, self.kit = site, rules.kit
        self.on_double = on_double
        self.on_stored = on_stored
        self._publish_lock = threading.Lock()
        self.wake = threading.Event()
        self.want_catchup = threading.Event()

    # -- wiring ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.bus.subscribe(topics.site_checkin(self.site, "+"), self.on_peer_message, qos=1)
        self.bus.subscribe(topics.site_catchup(self.site, "+"), self.on_catchup_request, qos=1)
        # A bridge coming back up (Mosquitto announces it locally) is the moment to catch up.
        self.bus.subscribe("$SYS/broker/connection/+/state", self._on_bridge_state)
        self.want_catchup.set()

    def _on_bridge_state(self, _topic: str, msg: dict) -> None:
        if msg.get("value") == 1:
            self.want_catchup.set()

    # -- out -------------------------------------------------------------------------------------
    def _message(self, row, prev: int) -> dict:
        return {"origin_kit": self.kit, "seq": row["seq"], "prev": prev, "id": row["id"], "type": row["type"],
                "hlc": row["hlc"], "payload": json.loads(row["payload"])}

    def _shared_after(self, after: int, limit: int = BATCH) -> list[dict]:
        rows = self.db.query(f"SELECT seq, id, type, hlc, payload FROM events WHERE seq > ? AND type IN ({_shared_marks()})"
                             " ORDER BY seq LIMIT ?", (after, limit))
        if not rows:
            return []
        prev = self.db.scalar(f"SELECT COALESCE(MAX(seq), 0) FROM events WHERE seq <= ? AND type IN ({_shared_marks()})",
                              (after,))
        out = []
        for row in rows:
            out.append(self._message(row, prev))
            prev = row["seq"]
        return out

    def publish_pending(self) -> int:
        """Publish this kit's shared events not yet sent; the cursor moves only once the broker took them."""
        if not self.bus.is_connected:
            return 0
        with self._publish_lock:
            done = self.db.scalar("SELECT published_seq FROM checkin_site_outbox WHERE id = 1") or 0
            messages = self._shared_after(done)
            for m in messages:
                self.bus.publish(topics.site_checkin(self.site, self.kit), m, qos=1)
            if messages:
                with self.db.transaction() as conn:
                    conn.execute("INSERT INTO checkin_site_outbox (id, published_seq) VALUES (1, ?) ON CONFLICT(id)"
                                 " DO UPDATE SET published_seq = excluded.published_seq", (messages[-1]["seq"],))
            return len(messages)

    def request_catchup(self) -> None:
        if not self.bus.is_connected:
            return
        self.want_catchup.clear()
        cursors = {r[0]: r[1] for r in self.db.query("SELECT origin_kit, highest_seq FROM checkin_peer_cursor")}
        self.bus.publish(topics.site_catchup(self.site, self.kit), {"from": self.kit, "cursors": cursors}, qos=1)

    def on_catchup_request(self, _topic: str, msg: dict) -> None:
        requester, cursors = msg.get("from"), msg.get("cursors")
        if not isinstance(requester, str) or requester == self.kit or not isinstance(cursors, dict):
            return
        after = cursors.get(self.kit, 0)
        if not isinstance(after, int) or after < 0:
            log.warning("event=bad_catchup_request from=%r", requester)
            return
        sent = 0
        while True:
            batch = self._shared_after(after)
            for m in batch:
                self.bus.publish(topics.site_checkin(self.site, self.kit), m, qos=1)
            sent += len(batch)
            if len(batch) < BATCH:
                break
            after = batch[-1]["seq"]
        if sent:
            log.info("event=catchup_answered to=%s events=%d", requester, sent)

    # -- in --------------------------------------------------------------------------------------
    def on_peer_message(self, _topic: str, msg: dict) -> None:
        origin = msg.get("origin_kit")
        if origin == self.kit:
            return
        try:
            self.store(msg)
        except (KeyError, TypeError, ValueError) as e:
            log.warning("event=bad_peer_event origin=%r error=%s", origin, e)

    def store(self, msg: dict) -> bool:
        """Keep one peer event; True if it was new. Raises ValueError for a malformed message."""
        origin, seq, prev, hlc = msg["origin_kit"], msg["seq"], msg["prev"], msg["hlc"]
        kind, payload, event_id = msg["type"], msg["payload"], msg["id"]
        if not (isinstance(origin, str) and KIT_RE.match(origin)):
            raise ValueError("origin_kit")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (seq, prev, hlc)) or prev >= seq:
            raise ValueError("seq/prev/hlc")
        if kind not in SHARED_TYPES or not isinstance(payload, dict) or not isinstance(event_id, str):
            raise ValueError("type/payload/id")
        ticket_key = str(payload.get("ticket_key", ""))[:1024]
        verdict = str(payload.get("verdict", ""))
        rehearsal = bool(payload.get("rehearsal"))
        double = None
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM checkin_peer_events WHERE (origin_kit = ? AND origin_seq = ?) OR event_id = ?",
                            (origin, seq, event_id)).fetchone():
                return False
            if kind == "checkin.scanned" and verdict == "admit" and not rehearsal and ticket_key:
                before = presence(conn, self.rules, ticket_key, False)
                if before.inside and before.last_in:
                    double = {"ticket_key": ticket_key, "name": str(payload.get("name", "")),
                              "first": before.last_in, "second": {"door": payload.get("door"), "kit": origin,
                                                                  "at": payload.get("at")}}
            at = payload.get("at")
            conn.execute(
                "INSERT INTO checkin_peer_events (origin_kit, origin_seq, prev_seq, event_id, type, hlc, at, ticket_key,"
                " verdict, admitted, rehearsal, door, name, ticket_type, undo_of, payload, received_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (origin, seq, prev, event_id, kind, hlc, float(at) if isinstance(at, int | float) else time.time(),
                 ticket_key, verdict, int(bool(payload.get("admitted"))), int(rehearsal), str(payload.get("door", "")),
                 str(payload.get("name", "")), str(payload.get("ticket_type", "")),
                 str(payload.get("scan_event_id", "")) if kind == "checkin.undone" else "",
                 json.dumps(payload), time.time()))
            self.ledger.observe(conn, hlc)
            row = conn.execute("SELECT highest_seq FROM checkin_peer_cursor WHERE origin_kit = ?", (origin,)).fetchone()
            cursor = row[0] if row else 0
            while True:
                nxt = conn.execute("SELECT origin_seq FROM checkin_peer_events WHERE origin_kit = ? AND prev_seq = ?"
                                   " AND origin_seq > ?", (origin, cursor, cursor)).fetchone()
                if not nxt:
                    break
                cursor = nxt[0]
            conn.execute("INSERT INTO checkin_peer_cursor (origin_kit, highest_seq, last_seen) VALUES (?,?,?)"
                         " ON CONFLICT(origin_kit) DO UPDATE SET highest_seq = excluded.highest_seq,"
                         " last_seen = excluded.last_seen", (origin, cursor, time.time()))
        if cursor < seq:
            log.info("event=peer_gap origin=%s have=%d got=%d", origin, cursor, seq)
            self.want_catchup.set()
        if self.on_stored:
            self.on_stored(msg)
        if double:
            log.warning("event=double_admission ticket=%s first_door=%s second_door=%s", double["name"] or "?",
                        double["first"].get("door"), double["second"].get("door"))
            if self.on_double:
                self.on_double(double)
        return True
