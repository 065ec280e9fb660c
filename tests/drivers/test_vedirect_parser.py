"""The VE.Direct text parser against blocks built byte by byte here, independently of the product."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.vedirect import BlockMerger, VEDirectParser, decode, parse_hex_message


def block(*fields: tuple[str, str], checksum: int | None = None) -> bytes:
    """The spec, spelled out: every byte from the first \\r\\n to the checksum byte sums to 0 mod 256."""
    body = b"".join(b"\r\n" + k.encode() + b"\t" + v.encode() for k, v in fields) + b"\r\nChecksum\t"
    if checksum is None:
        checksum = (-sum(body)) % 256
    return body + bytes([checksum])


MPPT = (("PID", "0xA053"), ("V", "12800"), ("I", "3200"), ("VPV", "18650"), ("PPV", "41"), ("CS", "3"),
        ("ERR", "0"), ("LOAD", "ON"), ("IL", "400"), ("H20", "35"))


def test_valid_block_is_decoded_with_units():
    parser = VEDirectParser()
    blocks = parser.feed(block(*MPPT))
    assert [b.fields for b in blocks] == [dict(MPPT)]
    fields = decode(blocks[0].fields)
    assert fields["battery_v"] == 12.8 and fields["battery_a"] == 3.2 and fields["solar_w"] == 41
    assert fields["charge_state"] == "bulk" and fields["yield_today_kwh"] == 0.35 and fields["load_on"] is True
    assert parser.stats.accepted == 1 and parser.stats.rejected == 0


def test_one_wrong_byte_rejects_the_whole_block_and_the_next_one_still_parses():
    good = block(*MPPT)
    bad = good.replace(b"12800", b"12900")
    parser = VEDirectParser()
    blocks = parser.feed(bad + good)
    assert [b.fields["V"] for b in blocks] == ["12800"]
    assert parser.stats.rejected == 1 and parser.stats.reasons == {"checksum": 1}


def test_checksum_byte_that_is_a_colon_or_unprintable_is_not_taken_for_hex_or_utf8():
    # Search a value whose block checksum is ':' (0x3A), and one whose checksum is 0xFF.
    found = {}
    for n in range(58 * 40):
        raw = block(("V", "12000"), ("SER#", "Z" * (n // 58) + chr(0x41 + n % 58)))
        found.setdefault(raw[-1], raw)
    assert 0x3A in found and 0xFF in found
    parser = VEDirectParser()
    data = found[0x3A] + found[0xFF] + found[0x3A]
    blocks = parser.feed(data)
    assert len(blocks) == 3 and parser.stats.rejected == 0


def test_hex_message_in_the_middle_of_a_block_is_set_aside_and_the_block_resumes():
    text = block(*MPPT)
    hex_line = b":A0102000543\n"
    # after the 4th field's value (before its \r\n), as a device interleaves it
    cut = text.index(b"\r\nVPV")
    interleaved = text[:cut] + hex_line + text[cut:]
    parser = VEDirectParser()
    blocks = parser.feed(interleaved)
    assert [b.fields for b in blocks] == [dict(MPPT)]
    assert parser.stats.hex_messages == 1
    assert parse_hex_message(b"154").valid  # ping: command 1, checksum 0x54 -> 0x55


def test_fed_one_byte_at_a_time_gives_the_same_blocks():
    data = block(*MPPT) + b":154\n" + block(("V", "12000"), ("SOC", "---"))
    whole = VEDirectParser().feed(data)
    parser = VEDirectParser()
    split = [b for i in range(len(data)) for b in parser.feed(data[i:i + 1])]
    assert whole == split and len(split) == 2


def test_joining_mid_block_rejects_the_fragment_then_syncs():
    data = block(*MPPT)
    parser = VEDirectParser()
    blocks = parser.feed(data[25:] + data + data)
    assert len(blocks) == 2 and parser.stats.rejected == 1


def test_dashes_mean_not_available():
    fields = decode(dict([("V", "12000"), ("VS", "---"), ("SOC", "---"), ("TTG", "-1")]))
    assert fields["aux_v"] is None and fields["soc_percent"] is None and fields["ttg_minutes"] is None


def test_two_part_bmv_blocks_are_merged_and_nothing_is_carried_to_the_next_cycle():
    part1 = block(("PID", "0x203"), ("V", "13100"), ("I", "-1500"), ("SOC", "876"), ("TTG", "600"))
    part2 = block(("H1", "-5000"), ("H2", "-2000"))
    # the next cycle's part 1 lacks TTG: an old TTG must not survive into it
    next1 = block(("PID", "0x203"), ("V", "13050"), ("I", "-1600"), ("SOC", "875"))
    parser, merger = VEDirectParser(), BlockMerger()
    records = [r for raw in (part1, part2, part1, part2, next1, part2) for b in parser.feed(raw) for r in merger.add(b)]
    assert records[0] == {**dict([("PID", "0x203"), ("V", "13100"), ("I", "-1500"), ("SOC", "876"),
                                  ("TTG", "600")]), "H1": "-5000", "H2": "-2000"}
    assert merger.parts_per_cycle == 2
    last = records[-1]
    assert last["V"] == "13050" and "TTG" not in last and last["H1"] == "-5000"
    assert len(records) == 3


def test_single_part_device_releases_every_block():
    parser, merger = VEDirectParser(), BlockMerger()
    raws = [block(("V", str(12000 + i)), ("PPV", "10")) for i in range(4)]
    records = [r for raw in raws for b in parser.feed(raw) for r in merger.add(b)]
    assert [r["V"] for r in records] == ["12000", "12001", "12002", "12003"]


def test_cut_lines_and_binary_noise_never_leak_a_value():
    parser = VEDirectParser()
    data = block(*MPPT)[:40] + bytes(range(256)) + block(*MPPT)[10:] + b"\x00\xff" * 50 + block(*MPPT)
    blocks = parser.feed(data)
    assert [b.fields for b in blocks] == [dict(MPPT)]
    assert parser.stats.rejected >= 1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=80), st.sampled_from([block(*MPPT), b":154\n", b"\r\n",
                                                                    b"Checksum\t", b"\t", b":"])), max_size=20))
def test_fuzz_never_raises_and_never_yields_a_block_with_a_bad_checksum(chunks):
    parser = VEDirectParser()
    for chunk in chunks:
        for b in parser.feed(chunk):
            assert sum(b.raw) % 256 == 0
            assert b.raw.startswith(b"\r\n") and b.raw[:-1].endswith(b"\r\nChecksum\t")
            assert b.fields and all(k.isascii() and v.isascii() for k, v in b.fields.items())
            decode(b.fields)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=0, max_value=3))
def test_fuzz_noise_before_a_good_block_does_not_stop_the_good_ones_after_it(noise, repeats):
    parser = VEDirectParser()
    parser.feed(noise)
    blocks = parser.feed(block(*MPPT) * (repeats + 2))
    # noise may swallow at most the first block (it may still be inside a pretend HEX line or block)
    assert len(blocks) >= repeats + 1
    assert all(b.fields == dict(MPPT) for b in blocks)


PIECES = [block(*MPPT), block(("V", "12000"), ("SOC", "---")), b":154\n", b":A0102000543\n", b"\r\n", b"\r", b"\n",
          b"Checksum\t", b"\t", b":", b"\r\nV\t1", block(("L" * 17, "1")), block(("V", "x" * 49)), b"\r\r\n",
          b"Checksum", b"\x00", b"\r\n\x00"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=30)), max_size=25),
       st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=8))
def test_fast_path_and_byte_by_byte_give_identical_results(pieces, chunk_sizes):
    data = b"".join(pieces)
    slow = VEDirectParser(fast=False)
    expected = slow.feed(data)
    fast = VEDirectParser()
    got, i, k = [], 0, 0
    while i < len(data):
        size = chunk_sizes[k % len(chunk_sizes)] * 7
        got += fast.feed(data[i:i + size])
        i, k = i + size, k + 1
    assert got == expected
    assert fast.stats.as_dict() == slow.stats.as_dict()
