"""Doors that share what they saw: check-in's channel on the site link (kit/sitelink.py).

The link publishes this kit's ``checkin.scanned`` / ``checkin.undone`` events on
``fieldkit/site/<site>/checkin/<kit>``, validates what the other kits send, keeps per-peer cursors and
catch-up. What is check-in's own is here: what a peer's scan or undo payload must look like, keeping
it in ``checkin_peer_events`` (keyed by origin kit and seq, never in this kit's ledger) and noticing a
ticket admitted at two doors that could not see each other.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import time
from collections.abc import Callable

from checkin.scans import SHARED_TYPES
from checkin.validate import DoorRules, presence
from kit.sitelink import Channel, PeerEvent, bridge_conf

__all__ = ["bridge_conf", "checkin_channel", "store_peer_event", "validate_peer_payload"]

log = logging.getLogger("fieldkit.checkin.peers")
MAX_TEXT = 1024  # characters in any text field of a peer's scan
TEXT_FIELDS = ("ticket_key", "verdict", "door", "name", "ticket_type", "reason", "source", "order_code",
               "attention_reason", "code_excerpt", "manual_reason", "scan_event_id", "by")
BOOL_FIELDS = ("admitted", "attention", "rehearsal")


def validate_peer_payload(event: PeerEvent) -> str | None:
    """Why a peer's checkin payload is refused (the field's name), or None when it is well formed."""
    p = event.payload
    for name in TEXT_FIELDS:
        if name in p and not (isinstance(p[name], str) and len(p[name]) <= MAX_TEXT):
            return name
    for name in BOOL_FIELDS:
        if name in p and not isinstance(p[name], bool):
            return name
    at = p.get("at")
    if at is not None and (isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at)
                           or not 0 <= at < 1e11):
        return "at"
    if event.type == "checkin.scanned" and not p.get("verdict"):
        return "verdict"
    if event.type == "checkin.undone" and not p.get("scan_event_id"):
        return "scan_event_id"
    return None


def store_peer_event(conn: sqlite3.Connection, rules: DoorRules, event: PeerEvent) -> dict | None:
    """Keep a validated peer event (inside the link's transaction). None if it was held already; else
    ``{"double": info or None}``, info naming both doors when this admission makes a ticket inside twice."""
    p = event.payload
    if conn.execute("SELECT 1 FROM checkin_peer_events WHERE (origin_kit = ? AND origin_seq = ?) OR event_id = ?",
                    (event.origin_kit, event.seq, event.id)).fetchone():
        return None
    ticket_key, verdict = p.get("ticket_key", ""), p.get("verdict", "")
    rehearsal = bool(p.get("rehearsal"))
    double = None
    if event.type == "checkin.scanned" and verdict == "admit" and not rehearsal and ticket_key:
        before = presence(conn, rules, ticket_key, False)
        if before.inside and before.last_in:
            double = {"ticket_key": ticket_key, "name": p.get("name", ""), "first": before.last_in,
                      "second": {"door": p.get("door"), "kit": event.origin_kit, "at": p.get("at")}}
    at = p.get("at")
    conn.execute(
        "INSERT INTO checkin_peer_events (origin_kit, origin_seq, prev_seq, event_id, type, hlc, at, ticket_key,"
        " verdict, admitted, rehearsal, door, name, ticket_type, undo_of, payload, received_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (event.origin_kit, event.seq, event.prev, event.id, event.type, event.hlc,
         float(at) if at is not None else (event.hlc >> 16) / 1000, ticket_key, verdict,
         int(bool(p.get("admitted"))), int(rehearsal), p.get("door", ""), p.get("name", ""),
         p.get("ticket_type", ""), p.get("scan_event_id", "") if event.type == "checkin.undone" else "",
         json.dumps(p), time.time()))
    return {"double": double}


def checkin_channel(rules: DoorRules, *, catchup_seconds: float = 15.0,
                    on_double: Callable[[dict], None] | None = None,
                    on_stored: Callable[[dict], None] | None = None) -> Channel:
    """Check-in's registration on the site link: shared types, payload check, store, what to tell the door."""

    def after_store(event: PeerEvent, result: dict) -> None:
        if on_stored:
            on_stored(event.as_message())
        double = result.get("double")
        if double:
            log.warning("event=double_admission ticket=%s first_door=%s second_door=%s", double["name"] or "?",
                        double["first"].get("door"), double["second"].get("door"))
            if on_double:
                on_double(double)

    return Channel("checkin", SHARED_TYPES, validate_peer_payload,
                   lambda conn, event: store_peer_event(conn, rules, event), after_store, catchup_seconds)
