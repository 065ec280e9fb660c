"""pretix offline signed tickets (``pretix_sig1``): the layout, a tiny protobuf codec, sign and verify.

QR text = reverse(base64(0x01 | len(payload) u16be | len(signature) u16be | payload | signature)).
The payload is a protobuf ``Ticket``; the signature is Ed25519 over the payload bytes only. The kit
issues its own tickets in the same layout, so one verifier serves pretix and kit-issued tickets.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

VERSION = 0x01
SIGNATURE_LENGTH = 64
MAX_TEXT = 1024  # real codes are ~120 characters; anything far longer is not a signed ticket
_B64_RE = re.compile(r"^[A-Za-z0-9+/=]+$")


class NotSignedTicket(ValueError):
    """The text does not have the signed-ticket layout (it may still be a ticket-list secret)."""


class MalformedTicket(ValueError):
    """The layout is right but the payload inside cannot be read."""


@dataclass(frozen=True)
class TicketPayload:
    seed: str
    item: int = 0
    variation: int = 0
    subevent: int = 0
    valid_from: int = 0  # unix seconds, 0 = not set
    valid_until: int = 0


# --- protobuf (only what the Ticket message needs) -------------------------------------------------

def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # int64 negatives are ten-byte two's complement varints
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise MalformedTicket("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift >= 70:
            raise MalformedTicket("varint too long")
    result &= (1 << 64) - 1
    if result >= 1 << 63:
        result -= 1 << 64
    return result, pos


def encode_payload(t: TicketPayload) -> bytes:
    seed = t.seed.encode("utf-8")
    out = bytearray(b"\x0a" + _varint(len(seed)) + seed)
    for number, value in ((2, t.item), (3, t.variation), (4, t.subevent), (5, t.valid_from), (6, t.valid_until)):
        if value:
            out += _varint(number << 3) + _varint(value)
    return bytes(out)


def decode_payload(data: bytes) -> TicketPayload:
    fields: dict[int, int | str] = {}
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if number <= 0:
            raise MalformedTicket("field number 0")
        if wire == 0:
            value, pos = _read_varint(data, pos)
            fields[number] = value
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            if length < 0 or pos + length > len(data):
                raise MalformedTicket("truncated string")
            raw = data[pos:pos + length]
            pos += length
            if number == 1:
                try:
                    fields[1] = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise MalformedTicket("seed is not UTF-8") from None
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise MalformedTicket(f"unsupported wire type {wire}")
        if pos > len(data):
            raise MalformedTicket("truncated field")
    seed = fields.get(1)
    if not isinstance(seed, str) or not seed:
        raise MalformedTicket("no seed")

    def num(n: int) -> int:
        v = fields.get(n, 0)
        return v if isinstance(v, int) else 0

    return TicketPayload(seed, num(2), num(3), num(4), num(5), num(6))


# --- the outer layout ------------------------------------------------------------------------------

def human_code(seed: str) -> str:
    """A seed as staff read it aloud: K7Q-2MX-P4A."""
    return "-".join(seed[i:i + 3] for i in range(0, len(seed), 3))


def pack(payload: bytes, signature: bytes) -> str:
    raw = bytes([VERSION]) + len(payload).to_bytes(2, "big") + len(signature).to_bytes(2, "big") + payload + signature
    return base64.b64encode(raw).decode("ascii")[::-1]


def unpack(text: str) -> tuple[bytes, bytes]:
    """Split a QR text into (payload, signature); NotSignedTicket when it is not this layout."""
    if not text or len(text) > MAX_TEXT or not _B64_RE.match(text):
        raise NotSignedTicket("not base64")
    try:
        raw = base64.b64decode(text[::-1], validate=True)
    except (binascii.Error, ValueError):
        raise NotSignedTicket("not base64") from None
    if len(raw) < 5 or raw[0] != VERSION:
        raise NotSignedTicket("wrong version byte")
    payload_len = int.from_bytes(raw[1:3], "big")
    sig_len = int.from_bytes(raw[3:5], "big")
    if 5 + payload_len + sig_len != len(raw) or sig_len != SIGNATURE_LENGTH or payload_len == 0:
        raise NotSignedTicket("lengths do not match")
    return raw[5:5 + payload_len], raw[5 + payload_len:]


def sign(private_key: Ed25519PrivateKey, ticket: TicketPayload) -> str:
    payload = encode_payload(ticket)
    return pack(payload, private_key.sign(payload))


@dataclass(frozen=True)
class VerifiedTicket:
    ticket: TicketPayload
    key_fingerprint: str


def verify(text: str, keys: list[tuple[str, Ed25519PublicKey]]) -> VerifiedTicket | None:
    """The ticket if a key in ``keys`` (fingerprint, key) signed it; None if none did.

    Raises NotSignedTicket for text of another shape and MalformedTicket for a signed
    payload that cannot be read (only after the signature checked out: junk is not parsed).
    """
    payload, signature = unpack(text)
    for fingerprint, key in keys:
        try:
            key.verify(signature, payload)
        except InvalidSignature:
            continue
        return VerifiedTicket(decode_payload(payload), fingerprint)
    return None
