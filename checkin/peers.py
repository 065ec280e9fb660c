"""Doors that share what they saw: check-in's channel on the site link (kit/sitelink.py).

The link publishes this kit's ``checkin.scanned`` / ``checkin.undone`` events (and its revocations,
lifts and reissued codes, applied to this kit's revocation table and guest list as they arrive) on
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

from checkin.reissue import REISSUED_RE
from checkin.revocations import apply_revocation_event
from checkin.scans import METHODS, REVOCATION_TYPES, SHARED_TYPES, scan_method
from checkin.validate import DoorRules, presence
from kit.sitelink import Channel, PeerEvent, PeerRefused, bridge_conf

__all__ = ["bridge_conf", "checkin_channel", "store_peer_event", "validate_peer_payload"]

log = logging.getLogger("fieldkit.checkin.peers")
MAX_TEXT = 1024  # characters in any text field of a peer's scan
TEXT_FIELDS = ("ticket_key", "verdict", "door", "name", "ticket_type", "reason", "source", "order_code",
               "attention_reason", "code_excerpt", "manual_reason", "scan_event_id", "by", "method", "status",
               "replaces", "identity")
BOOL_FIELDS = ("admitted", "attention", "rehearsal", "reissued")
TIME_FIELDS = ("at", "valid_from", "valid_until")


def validate_peer_payload(event: PeerEvent) -> str | None:
    """Why a peer's checkin payload is refused (the field's name), or None when it is well formed."""
    p = event.payload
    for name in TEXT_FIELDS:
        if name in p and not (isinstance(p[name], str) and len(p[name]) <= MAX_TEXT):
            return name
    for name in BOOL_FIELDS:
        if name in p and not isinstance(p[name], bool):
            return name
    for name in TIME_FIELDS:
        at = p.get(name)
        if at is not None and (isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at)
                               or not 0 <= at < 1e11):
            return name
    if event.type == "checkin.scanned" and not p.get("verdict"):
        return "verdict"
    if "method" in p and p["method"] not in METHODS:
        return "method"
    if event.type == "checkin.undone" and not p.get("scan_event_id"):
        return "scan_event_id"
    if event.type in REVOCATION_TYPES and not p.get("ticket_key"):
        return "ticket_key"
    if event.type == "checkin.revoked" and p.get("status", "revoked") not in ("revoked", "blocked"):
        return "status"
    # A peer adds only codes a reissue makes (never a guest list of its own), naming what it replaces.
    if event.type == "checkin.ticket_added" and not (REISSUED_RE.match(p["ticket_key"]) and p.get("replaces")):
        return "ticket_key"
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
    if event.type == "checkin.ticket_added" and conn.execute(
            "SELECT 1 FROM checkin_tickets WHERE ticket_key = ? AND source != ?",
            (ticket_key, f"reissue:{event.origin_kit}")).fetchone():
        raise PeerRefused("ticket_added: the code is on this kit's list already")
    if event.type == "checkin.scanned" and verdict == "admit" and not rehearsal and ticket_key:
        before = presence(conn, rules, ticket_key, False)
        if before.inside and before.last_in:
            double = {"ticket_key": ticket_key, "name": p.get("name") or guest_name(conn, ticket_key),
                      "first": before.last_in,
                      "second": {"door": p.get("door"), "kit": event.origin_kit, "at": p.get("at")}}
    at = p.get("at")
    conn.execute(
        "INSERT INTO checkin_peer_events (origin_kit, origin_seq, prev_seq, event_id, type, hlc, at, ticket_key,"
        " verdict, admitted, rehearsal, door, name, ticket_type, undo_of, payload, received_at, method)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (event.origin_kit, event.seq, event.prev, event.id, event.type, event.hlc,
         float(at) if at is not None else (event.hlc >> 16) / 1000, ticket_key, verdict,
         int(bool(p.get("admitted"))), int(rehearsal), p.get("door", ""), p.get("name", ""),
         p.get("ticket_type", ""), p.get("scan_event_id", "") if event.type == "checkin.undone" else "",
         json.dumps(p), time.time(), scan_method(p) if event.type == "checkin.scanned" else ""))
    if event.type in REVOCATION_TYPES:
        apply_revocation_event(conn, event.type, p, origin=event.origin_kit, event_id=event.id)
        log.info("event=peer_revocation type=%s origin=%s ticket=%s", event.type, event.origin_kit, ticket_key[:20])
    return {"double": double}


def guest_name(conn: sqlite3.Connection, ticket_key: str) -> str:
    """The name this kit's own list holds for a ticket (peers' events name no person)."""
    row = conn.execute("SELECT name FROM checkin_tickets WHERE ticket_key = ?", (ticket_key,)).fetchone()
    return row[0] if row else ""


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
