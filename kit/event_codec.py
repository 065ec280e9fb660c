"""Ledger payloads at rest: canonical JSON text, stored deflated against a fixed dictionary.

A sale document is ~1 KB of JSON whose key names repeat in every sale; deflate with a preset
dictionary of those names and the usual values stores it in ~250 bytes, which keeps a night of
sales small on an SD card (issue 13: <= 1.5 KB of database per sale). What is hashed, uploaded
to HQ and shared with peers is always the canonical text: the packing is only how the row is kept.

A stored payload is either text (rows written before packing, or too short to gain) or a BLOB
whose first byte names the dictionary. A dictionary is never changed once shipped: a better one
gets a new first byte, and every reader keeps understanding the old ones.
"""

from __future__ import annotations

import zlib

# Version 1: key names and common values of the ledger's frequent payloads (sale, refund, check-in),
# in canonical form (sorted keys, compact). Deflate prefers what is near the end: the commonest last.
_DICTIONARY_V1 = (
    b'{"by":"lead","kind":"refund","original_id":"","original_line_no":1,"reason":"","moves_stock":true,'
    b'"scan_seq":1,"scan_event_id":"","undo_of":"","direction":"entry","level":"warning","command":"",'
    b'"attention":false,"attention_reason":"","admitted":true,"verdict":"admit","door":"Door 1",'
    b'"source":"api","rehearsal":false,"name":"","ticket_type":"","order_code":"","ticket_key":"",'
    b'"code_excerpt":"","manual_reason":"","at":1700000000.0}'
    b'{"at":"2026-01-01T20:00:00.000+00:00","by":"merch","cart_discount_cents":0,"change_cents":0,'
    b'"currency":"EUR","discount_cents":0,"discount_reason":"","id":"","idempotency_key":"","kind":"sale",'
    b'"lines":[{"discount_cents":0,"discount_reason":"","gross_cents":2500,"line_discount_cents":0,'
    b'"line_no":1,"name":"","qty":1,"sku":"","tax_bp":1900,"tax_cents":399,"total_cents":2500,'
    b'"unit_cents":2500,"variant":""}],"n":1,"oversold":[],"payments":[{"amount_cents":2500,"last4":"",'
    b'"method":"cash","reference":"","tendered_cents":2500}],"prefix":"","prices_include_tax":true,'
    b'"receipt":"","request_hash":"","shift_id":"","subtotal_cents":2500,"tax_cents":399,'
    b'"taxes":[{"gross_cents":2500,"net_cents":2101,"tax_bp":1900,"tax_cents":399}],'
    b'"tendered_cents":2500,"total_cents":2500}'
)
_DICTIONARIES = {1: _DICTIONARY_V1}
_CURRENT = 1
# Deflating costs ~50 µs (the dictionary is loaded each time): worth it for a sale's ~1 KB document, not
# on the scan path, where a check-in's ~400 bytes would cost a tenth of the scan (issue 13 item 5).
MIN_PACKED_BYTES = 640


class PayloadFormatError(ValueError):
    """A stored payload this version cannot read (damaged, or written by a newer kit)."""


def pack(text: str) -> str | bytes:
    """How to store one canonical payload: the text itself or a smaller BLOB."""
    raw = text.encode()
    if len(raw) < MIN_PACKED_BYTES:
        return text
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, _DICTIONARIES[_CURRENT])
    blob = bytes((_CURRENT,)) + deflate.compress(raw) + deflate.flush()
    return blob if len(blob) < len(raw) else text


def unpack(stored: str | bytes | memoryview) -> str:
    """The canonical text of a stored payload."""
    if isinstance(stored, str):
        return stored
    blob = bytes(stored)
    dictionary = _DICTIONARIES.get(blob[0]) if blob else None
    if dictionary is None:
        raise PayloadFormatError(f"stored payload of unknown format {blob[:1].hex() or 'empty'}")
    inflate = zlib.decompressobj(-15, dictionary)
    try:
        return (inflate.decompress(blob[1:]) + inflate.flush()).decode()
    except (zlib.error, UnicodeDecodeError) as e:
        raise PayloadFormatError(f"stored payload is damaged: {e}") from None
