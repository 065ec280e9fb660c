"""What another kit of the site may send the site link (kit/sitelink.py): every field checked, nothing trusted.

A peer's message is hostile until proven otherwise: its size, its kit ids (against the topic it came
on), its integers (not booleans, not negative, bounded), its HLC (not from the future: see
``Ledger.check_remote_hlc``), its type, id and payload shape. The feature checks the payload's fields.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from kit.ledger import ClockAheadError, Ledger

MAX_EVENT_BYTES = 64 * 1024  # one shared event, as JSON
MAX_SEQ = 1 << 53  # seqs stay exact in every JSON parser
MAX_CATCHUP_CURSORS = 1000  # peers named in one catch-up request
KIT_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
RESERVED_KITS = ("site",)  # fieldkit/site/# is the site tree


class PeerRefused(ValueError):
    """A peer's message is not stored; ``reason`` is a short word for the log."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class PeerEvent:
    """One event of another kit, its fields checked by the link and its payload by the channel."""

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


def valid_kit_id(value: object) -> bool:
    return isinstance(value, str) and bool(KIT_RE.match(value)) and value not in RESERVED_KITS


def is_count(value: object) -> bool:
    """A seq or cursor: an int (not a bool), 0 <= value < 2^53."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_SEQ


def check_size(msg: dict) -> None:
    # The bus has parsed it already; re-encoding measures it (and refuses nesting too deep to encode).
    try:
        size = len(json.dumps(msg, separators=(",", ":")).encode())
    except (ValueError, TypeError, RecursionError) as e:
        raise PeerRefused("unencodable", type(e).__name__) from None
    if size > MAX_EVENT_BYTES:
        raise PeerRefused("too_large", f"{size} bytes, limit {MAX_EVENT_BYTES}")


def check_event(msg: object, feature: str, types: tuple[str, ...], *, own_kit: str, ledger: Ledger,
                topic_kit: str | None = None) -> PeerEvent:
    """The PeerEvent in a peer's message, or PeerRefused saying what is wrong with it."""
    if not isinstance(msg, dict):
        raise PeerRefused("not_an_object")
    check_size(msg)
    origin = msg.get("origin_kit")
    if not valid_kit_id(origin):
        raise PeerRefused("bad_origin", f"{origin!r:.40}")
    if topic_kit is not None and topic_kit != origin:
        raise PeerRefused("origin_mismatch", "the topic's kit must be the message's origin_kit")
    if origin == own_kit:
        raise PeerRefused("own_kit", "a message in this kit's name from elsewhere")
    seq, prev, hlc = msg.get("seq"), msg.get("prev"), msg.get("hlc")
    if not (is_count(seq) and is_count(prev)) or prev >= seq:
        raise PeerRefused("bad_seq", f"seq={seq!r:.30} prev={prev!r:.30}")
    try:
        ledger.check_remote_hlc(hlc)
    except ClockAheadError as e:
        raise PeerRefused("hlc_ahead", f"{e}: check both kits' clocks") from None
    except ValueError as e:
        raise PeerRefused("bad_hlc", str(e)) from None
    kind, event_id, payload = msg.get("type"), msg.get("id"), msg.get("payload")
    if kind not in types:
        raise PeerRefused("bad_type", f"{kind!r:.60}")
    if not isinstance(event_id, str) or not UUID_RE.match(event_id):
        raise PeerRefused("bad_id", f"{event_id!r:.60}")
    if not isinstance(payload, dict):
        raise PeerRefused("bad_payload", "payload must be an object")
    return PeerEvent(feature, origin, seq, prev, event_id, kind, hlc, payload)


def check_catchup(msg: object, requester: str, own_kit: str) -> int:
    """The seq after which a catch-up request asks for this kit's events, or PeerRefused."""
    if not isinstance(msg, dict):
        raise PeerRefused("not_an_object")
    check_size(msg)
    if not valid_kit_id(requester):
        raise PeerRefused("bad_topic_kit")
    if msg.get("from") != requester:
        raise PeerRefused("from_mismatch", "the topic's kit must be the request's 'from'")
    cursors = msg.get("cursors")
    if not isinstance(cursors, dict) or len(cursors) > MAX_CATCHUP_CURSORS:
        raise PeerRefused("bad_cursors")
    after = cursors.get(own_kit, 0)
    if not is_count(after):
        raise PeerRefused("bad_cursors", f"cursor for {own_kit} is {after!r:.40}")
    return after
