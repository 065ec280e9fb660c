"""Bad input never crashes: any bytes as a cue sheet give a SheetError, any serial noise parses safely."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cues.documents import DEMO_SHEET
from cues.sheet import SheetError, parse_sheet
from drivers.dmx import enttec_frame, parse_enttec

DEMO_LINES = DEMO_SHEET.read_text().splitlines()


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.binary(max_size=400))
def test_any_bytes_as_a_sheet_is_a_clear_error_or_a_sheet(data):
    try:
        parse_sheet(data, "fuzz.toml")
    except SheetError as e:
        assert str(e).startswith("fuzz.toml")


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.integers(0, len(DEMO_LINES) - 1), st.sampled_from(['"', "= 7", "[[cues]]", "fade = -1", "", "kind = 3", "}"]))
def test_a_damaged_demo_sheet_names_a_line_inside_the_file(line_no, junk):
    lines = list(DEMO_LINES)
    lines[line_no] = junk
    try:
        parse_sheet("\n".join(lines), "demo.toml")
    except SheetError as e:
        assert e.line is None or 1 <= e.line <= len(lines)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.binary(max_size=600), st.binary(min_size=1, max_size=40))
def test_the_widget_parser_survives_noise_and_still_finds_the_frame_after_it(noise, levels):
    frames, rest = parse_enttec(noise.replace(b"\x7e", b"\x00") + enttec_frame(levels))
    assert frames[-1] == levels and rest == b""
    parse_enttec(noise)  # pure noise never raises
