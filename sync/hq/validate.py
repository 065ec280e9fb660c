"""Checks on one uploaded event before HQ inserts it: types, lengths and allowed characters of every field.

Everything a kit sends is hostile until checked. A record that fails is refused on its own with a reason
(the kit parks it); nothing here lets the database be the first to notice a bad value, because
PostgreSQL refuses a NUL character or an unencodable string for the whole batch with an error.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta

# A kit whose clock is at most this far ahead of HQ is still believed (NTP jitter, slow uplinks).
CLOCK_TOLERANCE = timedelta(seconds=120)
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")  # kits use UUIDs; this leaves room for others
TYPE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}$")  # "pos.sale", "checkin.scanned"
HASH_RE = re.compile(r"^[0-9a-f]{64}$")  # SHA-256 of the kit's hash chain, lowercase hex
WALL_RE = re.compile(r"^[0-9T:.+Z -]{10,40}$")  # ISO 8601 as the kit writes it
MAX_PAYLOAD_CHARS = 1024 * 1024  # the canonical JSON text of one event; kit events are a few kB
MAX_PAYLOAD_DEPTH = 32
MAX_SEQ = 2**63 - 1


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def bad_text(value: str) -> str | None:
    """Why a string cannot be stored as text in every database HQ runs on, or None."""
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8 (a lone surrogate)"
    return None


def check_payload(value: object, depth: int = 0, where: str = "payload") -> None:
    """Walk a payload: only JSON values, finite numbers, storable strings, bounded nesting."""
    if depth > MAX_PAYLOAD_DEPTH:
        raise ValueError(f"'payload' is nested deeper than {MAX_PAYLOAD_DEPTH} levels")
    if isinstance(value, str):
        problem = bad_text(value)
        if problem:
            raise ValueError(f"a string in '{where}' {problem}")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"'{where}' holds {value}, which is not a JSON number")
    elif isinstance(value, dict):
        for key, item in value.items():
            problem = bad_text(key)
            if problem:
                raise ValueError(f"a key in '{where}' {problem}")
            check_payload(item, depth + 1, where)
    elif isinstance(value, list):
        for item in value:
            check_payload(item, depth + 1, where)
    elif value is not None and not isinstance(value, (bool, int)):
        raise ValueError(f"'{where}' holds a value that is not JSON")


def _make_canonical():
    """json.dumps(sort_keys, compact, ensure_ascii=False, allow_nan=False), its C encoder built once:
    json.dumps builds a new one on every call, which costs about as much as encoding a small payload."""
    from json import encoder

    if encoder.c_make_encoder is None:  # a Python without the C accelerator
        return encoder.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode

    def refuse(value: object) -> object:
        raise TypeError(f"{type(value).__name__} is not JSON")

    make = encoder.c_make_encoder(None, refuse, encoder.encode_basestring, None, ":", ",", True, False, False)
    return lambda value: "".join(make(value, 0))


_canonical = _make_canonical()


def payload_text(payload: dict) -> str:
    """The payload's canonical JSON text, after the same checks as ``check_payload``.

    The walk over every value costs more than the rest of a record's checks together, so it runs only
    when the canonical text shows it could find something: the text escapes a NUL as \\u0000, keeps a
    lone surrogate (it will not encode), refuses NaN and infinities, and cannot nest deeper than it has
    brackets. A suspicious text (a literal backslash-u0000 in a string, many brackets) gets the walk,
    which decides exactly and gives the reason.
    """
    try:
        text = _canonical(payload)
        clean = ("\\u0000" not in text and text.count("{") + text.count("[") <= MAX_PAYLOAD_DEPTH
                 and (text.isascii() or _encodes(text)))
    except (ValueError, TypeError, RecursionError):
        text, clean = "", False
    if not clean:
        check_payload(payload)
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _string(record: dict, name: str, pattern: re.Pattern, what: str) -> str:
    value = record.get(name)
    # Every pattern here allows only ASCII letters and signs, so a match is also storable text; only a
    # value that fails is looked at more closely, for the most useful reason.
    if isinstance(value, str) and pattern.match(value):
        return value
    if not isinstance(value, str):
        raise ValueError(f"'{name}' is missing or not a string")
    problem = bad_text(value)
    if problem:
        raise ValueError(f"'{name}' {problem}")
    if not pattern.match(value):
        raise ValueError(f"'{name}' {value[:40]!r} is not {what}")
    return value


def _integer(record: dict, name: str, low: int) -> int:
    value = record.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"'{name}' is missing or not an integer")
    if not low <= value <= MAX_SEQ:
        raise ValueError(f"'{name}' must be between {low} and 2^63-1")
    return value


def validate_record(record: object, kit: str, received_at: datetime) -> dict:
    """One uploaded event as a row for hq_events, or ValueError saying what is wrong with it.

    A record whose fields are all of the right kind passes in one expression; any other goes through
    the checks one by one (``_validate_in_order``), which find the first problem and say what it is.
    """
    if type(record) is dict:
        get = record.get
        id_, seq, hlc, type_, payload, wall, synced, digest = (
            get("id"), get("seq"), get("hlc"), get("type"), get("payload"), get("wall_time"), get("clock_synced"),
            get("hash"))
        if (type(id_) is str and ID_RE.match(id_) and get("kit") == kit and type(seq) is int and 1 <= seq <= MAX_SEQ
                and type(hlc) is int and 0 <= hlc <= MAX_SEQ and type(type_) is str and TYPE_RE.match(type_)
                and type(payload) is dict and type(wall) is str and WALL_RE.match(wall) and type(synced) is bool
                and type(digest) is str and HASH_RE.match(digest)):
            try:
                text = payload_text(payload)
                wall_time = _parse_time(wall)
            except ValueError:
                text = ""
            if text and len(text) <= MAX_PAYLOAD_CHARS and 1970 <= wall_time.year <= 9000:
                return {
                    "id": id_, "kit": kit, "seq": seq, "type": type_, "payload": text, "hlc": hlc, "wall_time": wall,
                    "clock_synced": synced, "hash": digest, "received_at": received_at,
                    "event_time": min(wall_time, received_at),
                    "time_trusted": synced and not wall_time > received_at + CLOCK_TOLERANCE,
                }
    return _validate_in_order(record, kit, received_at)


def _validate_in_order(record: object, kit: str, received_at: datetime) -> dict:
    if not isinstance(record, dict):
        raise ValueError(getattr(record, "reason", None) or "a record must be a JSON object")
    id_ = _string(record, "id", ID_RE, "an event id (1 to 64 letters, digits, '.', ':', '_' or '-')")
    claimed = record.get("kit")
    if not isinstance(claimed, str):
        raise ValueError("'kit' is missing or not a string")
    if claimed != kit:
        raise ValueError(f"event belongs to kit {claimed[:40]!r}, not {kit!r}")
    seq, hlc = _integer(record, "seq", 1), _integer(record, "hlc", 0)
    type_ = _string(record, "type", TYPE_RE, "an event type (1 to 64 letters, digits, '.', ':', '_' or '-')")
    payload = record.get("payload")
    if not isinstance(payload, dict):
        raise ValueError("'payload' is missing or not a JSON object")
    text = payload_text(payload)
    if len(text) > MAX_PAYLOAD_CHARS:
        raise ValueError(f"'payload' is {len(text)} characters; the limit is {MAX_PAYLOAD_CHARS}")
    wall = _string(record, "wall_time", WALL_RE, "an ISO 8601 time")
    try:
        wall_time = _parse_time(wall)
    except ValueError:
        raise ValueError(f"'wall_time' {wall[:40]!r} is not an ISO 8601 time") from None
    if not 1970 <= wall_time.year <= 9000:  # a Pi without its clock says 1970; beyond 9000 cannot be stored safely
        raise ValueError(f"'wall_time' {wall!r} is outside the years 1970 to 9000")
    synced = record.get("clock_synced")
    if not isinstance(synced, bool):
        raise ValueError("'clock_synced' is missing or not true/false")
    digest = _string(record, "hash", HASH_RE, "a SHA-256 hash (64 lowercase hex digits)")
    # Never trust a kit clock from the future: an event cannot have happened after HQ received it.
    in_future = wall_time > received_at + CLOCK_TOLERANCE
    return {
        "id": id_, "kit": kit, "seq": seq, "type": type_, "payload": text,
        "hlc": hlc, "wall_time": wall, "clock_synced": synced, "hash": digest, "received_at": received_at,
        "event_time": min(wall_time, received_at), "time_trusted": synced and not in_future,
    }


def record_seq(record: object) -> int | None:
    """The seq a record claims, when it is a usable integer (to answer and to remember refusals by)."""
    seq = record.get("seq") if isinstance(record, dict) else None
    if isinstance(seq, int) and not isinstance(seq, bool) and 1 <= seq <= MAX_SEQ:
        return seq
    return None


def record_id(record: object) -> str | None:
    """The id a record claims, echoed back only when it is storable text of a sane length."""
    rid = record.get("id") if isinstance(record, dict) else None
    if isinstance(rid, str) and len(rid) <= 64 and bad_text(rid) is None:
        return rid
    return None
