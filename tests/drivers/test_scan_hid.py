"""Keyboard-mode (HID) scanners: the key map on recorded key events, and the simulated scanner."""

from __future__ import annotations

import importlib.util
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.scanner_hid import EV_KEY, KeyDecoder, SimulatedHidScanner, text_to_key_events
from kit.testing import wait_for

SHIFT, ENTER, A, B, ONE, SLASH, EQUAL = 42, 28, 30, 48, 2, 53, 13

# "aB1/=" then Enter, as a US-layout scanner sends it (type, code, value); EV_SYN/EV_MSC in between.
RECORDED_US = [
    (4, 4, 458756), (EV_KEY, A, 1), (0, 0, 0), (EV_KEY, A, 0), (0, 0, 0),
    (EV_KEY, SHIFT, 1), (EV_KEY, B, 1), (EV_KEY, B, 0), (EV_KEY, SHIFT, 0), (0, 0, 0),
    (EV_KEY, ONE, 1), (EV_KEY, ONE, 2), (EV_KEY, ONE, 0),  # an auto-repeat event is not a second '1'
    (EV_KEY, SLASH, 1), (EV_KEY, SLASH, 0),
    (EV_KEY, EQUAL, 1), (EV_KEY, EQUAL, 0),
    (EV_KEY, ENTER, 1), (EV_KEY, ENTER, 0),
]


def feed_all(decoder, events, step=0.002, t0=0.0):
    out, t = [], t0
    for ev in events:
        out += decoder.feed(*ev, t)
        t += step
    return out, t


def test_recorded_us_events_with_shift_and_enter():
    out, _ = feed_all(KeyDecoder("us"), RECORDED_US)
    assert out == ["aB1/="]


def test_de_layout_swaps_y_z_and_moves_symbols():
    # On a German layout the scanner presses Z's key for 'y', Shift+7 for '/', Shift+0 for '=', ']' key for '+'.
    events = [(EV_KEY, 44, 1), (EV_KEY, 44, 0), (EV_KEY, SHIFT, 1), (EV_KEY, 8, 1), (EV_KEY, 8, 0),
              (EV_KEY, 11, 1), (EV_KEY, 11, 0), (EV_KEY, SHIFT, 0), (EV_KEY, 27, 1), (EV_KEY, 27, 0),
              (EV_KEY, 100, 1), (EV_KEY, 16, 1), (EV_KEY, 16, 0), (EV_KEY, 100, 0), (EV_KEY, ENTER, 1)]
    out, _ = feed_all(KeyDecoder("de"), events)
    assert out == ["y/=+@"]
    out_us, _ = feed_all(KeyDecoder("us"), events)
    assert out_us == ["z&)]"]  # what the same keys mean on a US layout: why the layout setting matters


def test_a_scanner_without_enter_ends_the_code_after_a_pause():
    decoder = KeyDecoder("us", end_pause_s=0.08)
    events = text_to_key_events("NOENTER1", "us", enter=False)
    out, t = feed_all(decoder, events)
    assert out == [] and decoder.poll(t + 0.02) == []
    assert decoder.poll(t + 0.1) == ["NOENTER1"]
    # the next code, typed after the pause, starts fresh even without a poll in between
    out, t = feed_all(decoder, text_to_key_events("X", "us", enter=False), t0=t + 0.5)
    more, _ = feed_all(decoder, text_to_key_events("Y", "us", enter=False), t0=t + 0.5)
    assert out == [] and more == ["X"]


def test_unknown_keys_and_overlong_codes_are_dropped():
    decoder = KeyDecoder("us", max_len=10)
    out, _ = feed_all(decoder, [(EV_KEY, 59, 1), (EV_KEY, 59, 0)] + text_to_key_events("ok"))  # F1 is ignored
    assert out == ["ok"]
    out, _ = feed_all(decoder, text_to_key_events("X" * 50) + text_to_key_events("after"))
    assert out == ["after"]


@pytest.mark.parametrize("layout", ["us", "de"])
@settings(deadline=None, max_examples=60)  # no deadline: a loaded CI machine is not a failure
@given(text=st.text(alphabet=string.ascii_letters + string.digits + "+/=-_.:", min_size=1, max_size=120))
def test_every_ticket_character_round_trips(layout, text):
    out, _ = feed_all(KeyDecoder(layout), text_to_key_events(text, layout))
    assert out == [text.strip()] if text.strip() else out == []


def test_simulated_keyboard_scanner_reports_from_its_own_thread():
    sim = SimulatedHidScanner(layout="de", repeat_window_s=1.0)
    got = []
    sim.start(lambda payload, source: got.append((payload, source)))
    try:
        wait_for(lambda: sim.status() == "ok", 5)
        sim.show("pretix/ABC+xyz==")
        sim.show("pretix/ABC+xyz==")
        sim.show("second")
        wait_for(lambda: len(got) == 2, 5, what="codes")
        assert got == [("pretix/ABC+xyz==", "hid-scanner"), ("second", "hid-scanner")]
    finally:
        sim.stop()


def test_real_keyboard_scanner_says_what_is_missing():
    from drivers.scanner_hid import HidScanSource

    path = "/dev/input/by-id/usb-absent-scanner-event-kbd"
    source = HidScanSource("hid-scanner", path)
    source.start(lambda *_: None)
    try:
        wait_for(lambda: source.status() != "not started", 5)
        if importlib.util.find_spec("evdev") is None:
            assert source.status() == "Keyboard-mode scanners need python3-evdev — sudo apt install python3-evdev"
        else:
            assert source.status() == f"Scanner not found at {path} — check cable"
    finally:
        source.stop()


def test_characters_a_layout_cannot_type_are_dropped_by_the_simulated_scanner():
    with pytest.raises(ValueError, match="cannot be typed"):
        text_to_key_events("€uro", "us")
    sim = SimulatedHidScanner(layout="us")
    got = []
    sim.start(lambda payload, source: got.append(payload))
    try:
        sim.show("€uro\x00ticket")
        wait_for(lambda: got == ["uroticket"], 5, what="typed code")
    finally:
        sim.stop()


def test_key_codes_match_the_kernel_names():
    """Our tables use raw Linux key codes (so they work without evdev); check them against evdev's names
    where evdev is installed, and against a few values from linux/input-event-codes.h everywhere."""
    from drivers.scanner_hid import LAYOUTS

    kernel = {"KEY_1": 2, "KEY_0": 11, "KEY_Q": 16, "KEY_ENTER": 28, "KEY_A": 30, "KEY_LEFTSHIFT": 42,
              "KEY_BACKSLASH": 43, "KEY_Z": 44, "KEY_SLASH": 53, "KEY_RIGHTSHIFT": 54, "KEY_SPACE": 57,
              "KEY_KP7": 71, "KEY_KPDOT": 83, "KEY_102ND": 86, "KEY_KPENTER": 96, "KEY_KPSLASH": 98,
              "KEY_RIGHTALT": 100, "KEY_TAB": 15}
    if importlib.util.find_spec("evdev") is not None:
        from evdev import ecodes

        assert {name: getattr(ecodes, name) for name in kernel} == kernel
        assert ecodes.EV_KEY == EV_KEY
    us, _ = LAYOUTS["us"]
    named = {"KEY_1": "1", "KEY_0": "0", "KEY_Q": "q", "KEY_A": "a", "KEY_BACKSLASH": "\\", "KEY_Z": "z",
             "KEY_SLASH": "/", "KEY_SPACE": " ", "KEY_KP7": "7", "KEY_KPDOT": ".", "KEY_KPSLASH": "/"}
    assert {name: us[kernel[name]][0] for name in named} == named


def test_keys_the_kernel_dropped_never_make_a_code_and_the_next_scan_reads_whole():
    # A reader late by more than evdev's buffer gets SYN_DROPPED and only the code's tail (seen on the
    # image test's uinput scanner: "FkScan-0001-AbC" arrived as "bC"): that tail must not be scanned.
    decoder = KeyDecoder("us")
    tail = [(0, 3, 0)] + text_to_key_events("bC", "us", enter=True)
    out, t = feed_all(decoder, tail)
    assert out == []
    out, _ = feed_all(decoder, text_to_key_events("FkScan-0002", "us", enter=True), t0=t + 1)
    assert out == ["FkScan-0002"]
    # Dropped without an Enter after it: the pause ends the broken code, and it is dropped too.
    decoder = KeyDecoder("us")
    out, t = feed_all(decoder, [(0, 3, 0)] + text_to_key_events("xyz", "us", enter=False))
    assert out + decoder.poll(t + 1) == []
