"""pretix_sig1 vectors made with our own keys, checked byte by byte against the published layout."""

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from checkin import signed
from checkin.keys import TicketKeyError, fingerprint, parse_public_keys, public_pem

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUB = [(fingerprint(KEY.public_key()), KEY.public_key())]


def test_layout_byte_by_byte():
    ticket = signed.TicketPayload("ABCDEFGHJ", item=23, valid_from=1700000000)
    text = signed.sign(KEY, ticket)
    raw = base64.b64decode(text[::-1])
    payload = bytes.fromhex("0a09") + b"ABCDEFGHJ" + bytes.fromhex("1017") + bytes.fromhex("2880e2cfaa06")
    assert raw[0] == 0x01
    assert raw[1:3] == len(payload).to_bytes(2, "big") == b"\x00\x13"
    assert raw[3:5] == b"\x00\x40"
    assert raw[5:5 + 19] == payload
    assert len(raw) == 5 + 19 + 64
    KEY.public_key().verify(raw[24:], payload)  # Ed25519 over the payload bytes only
    assert text == base64.b64encode(raw).decode()[::-1]


def test_verify_reads_every_field_and_names_the_key():
    ticket = signed.TicketPayload("Zx9-seed!", item=7, variation=3, subevent=99, valid_from=5, valid_until=10**10)
    got = signed.verify(signed.sign(KEY, ticket), PUB)
    assert got.ticket == ticket
    assert got.key_fingerprint == PUB[0][0]


def test_other_key_and_tampering_are_refused():
    text = signed.sign(Ed25519PrivateKey.generate(), signed.TicketPayload("ABCDEFGHJ", 1))
    assert signed.verify(text, PUB) is None
    good = signed.sign(KEY, signed.TicketPayload("ABCDEFGHJ", 1))
    raw = bytearray(base64.b64decode(good[::-1]))
    raw[8] ^= 0x01  # one bit of the seed
    assert signed.verify(base64.b64encode(bytes(raw)).decode()[::-1], PUB) is None


@pytest.mark.parametrize("text", ["", "hello", "=" * 10, "A" * 2000, "AAAA", "ééé", "\x00\x01",
                                  base64.b64encode(b"\x02\x00\x01\x00\x40x" + b"s" * 64).decode()[::-1],
                                  base64.b64encode(b"\x01\x00\x05\x00\x40abc").decode()[::-1]])
def test_not_signed_shapes(text):
    with pytest.raises(signed.NotSignedTicket):
        signed.unpack(text)


def test_negative_int64_round_trips():
    ticket = signed.TicketPayload("s", item=-5)
    assert signed.decode_payload(signed.encode_payload(ticket)).item == -5


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_payload_decoder_never_crashes_on_junk(data):
    try:
        signed.decode_payload(data)
    except signed.MalformedTicket:
        pass


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=400), st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode()[::-1])))
def test_verify_never_crashes_on_any_text(text):
    try:
        assert signed.verify(text, PUB) is None
    except signed.NotSignedTicket:
        pass


def test_public_keys_from_pretix_json_pem_and_base64():
    pem = public_pem(KEY.public_key())
    as_b64 = base64.b64encode(pem.encode()).decode()
    event = f'{{"slug": "x", "valid_keys": {{"pretix_sig1": ["{as_b64}"]}}}}'.encode()
    for data in (event, pem.encode(), as_b64.encode(), b"\xef\xbb\xbf" + as_b64.encode() + b"\n"):
        keys = parse_public_keys(data)
        assert [fingerprint(k) for k in keys] == [PUB[0][0]]
    for bad in (b"", b"{}", b'{"valid_keys": {}}', b"not base64 !!", base64.b64encode(b"x" * 20)):
        with pytest.raises(TicketKeyError):
            parse_public_keys(bad)
