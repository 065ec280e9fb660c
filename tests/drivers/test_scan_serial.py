"""Serial (USB CDC) scanners: the real pyserial reader on real pseudo-terminals."""

from __future__ import annotations

import os
import threading
import tty

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.scanner_serial import LineAssembler, SerialScanSource, SimulatedSerialScanner
from kit.testing import wait_for


class Codes:
    def __init__(self):
        self.items: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, payload: str, source: str) -> None:
        with self.lock:
            self.items.append((payload, source))

    @property
    def payloads(self) -> list[str]:
        with self.lock:
            return [p for p, _ in self.items]


class Pty:
    """A scanner 'plugged in' at ``link`` (like /dev/serial/by-id/...), which can be unplugged."""

    def __init__(self, link):
        self.link = link
        self.master = None

    def plug(self):
        self.master, slave = os.openpty()
        tty.setraw(slave)
        name = os.ttyname(slave)
        os.close(slave)  # the reader opens its own end, as it would a real device
        tmp = self.link.with_suffix(".new")
        tmp.symlink_to(name)
        os.replace(tmp, self.link)

    def unplug(self):
        os.close(self.master)
        self.master = None
        self.link.unlink()

    def write(self, data: bytes):
        os.write(self.master, data)


@pytest.fixture
def scanner(tmp_path):
    device = Pty(tmp_path / "usb-scanner")
    device.plug()
    codes = Codes()
    source = SerialScanSource("door-scanner", str(device.link), repeat_window_s=0.5)
    source.start(codes)
    wait_for(lambda: source.status() == "ok", 5, what="scanner connected")
    yield device, source, codes
    source.stop()
    if device.master is not None:
        device.unplug()


def test_reads_codes_ended_by_cr_or_crlf_even_split_across_writes(scanner):
    device, source, codes = scanner
    device.write(b"TICKET-ONE\r")
    device.write(b"TICKET-TWO\r\n")
    device.write(b"TICKET-TH")
    device.write(b"REE\r")
    device.write(b"\nTICKET-FOUR\r\n")
    wait_for(lambda: len(codes.payloads) == 4, 5, what="four codes")
    assert codes.payloads == ["TICKET-ONE", "TICKET-TWO", "TICKET-THREE", "TICKET-FOUR"]
    assert {s for _, s in codes.items} == {"door-scanner"}


def test_binary_junk_and_a_10kB_line_do_not_stop_the_scanner(scanner):
    device, source, codes = scanner
    device.write(bytes(range(256)) + b"\r\n")  # every byte value, including CR/LF inside
    device.write(b"\x02" + b"A" * 10_000 + b"\x03\r\n")  # far beyond max_line: dropped whole
    device.write(b"\xff\xfe\x00\x80garbage\r\n")
    device.write(b"\x02REAL-CODE-1\x03\r\n")  # STX/ETX framing some scanners add
    wait_for(lambda: "REAL-CODE-1" in codes.payloads, 5, what="the code after the junk")
    assert source.status() == "ok"
    assert all(len(p) <= source.max_line for p in codes.payloads)
    assert not any("AAAA" in p for p in codes.payloads)
    assert any(p.endswith("garbage") for p in codes.payloads)  # junk is reported; check-in refuses it


def test_same_code_is_not_reported_twice_within_the_window(scanner):
    device, source, codes = scanner
    device.write(b"SAME\r\nSAME\r\nOTHER\r\nSAME\r\n")
    wait_for(lambda: "OTHER" in codes.payloads, 5, what="codes")
    device.write(b"MARK\r\n")
    wait_for(lambda: "MARK" in codes.payloads, 5, what="mark")
    assert codes.payloads == ["SAME", "OTHER", "MARK"]


def test_unplugged_scanner_says_so_and_reconnects_when_plugged_back(scanner):
    device, source, codes = scanner
    device.write(b"BEFORE\r\n")
    wait_for(lambda: "BEFORE" in codes.payloads, 5, what="first code")
    device.unplug()
    wait_for(lambda: "not found" in source.status() or "disconnected" in source.status(), 5, what="status")
    wait_for(lambda: source.status() == f"Scanner not found on {device.link} — check cable", 5, what="not found")
    device.plug()
    wait_for(lambda: source.status() == "ok", 5, what="reconnected")
    device.write(b"AFTER\r\n")
    wait_for(lambda: "AFTER" in codes.payloads, 5, what="code after replug")


def test_scanner_missing_at_start_is_reported_then_found(tmp_path):
    device = Pty(tmp_path / "late-scanner")
    codes = Codes()
    source = SerialScanSource("late", str(device.link))
    source.start(codes)
    try:
        wait_for(lambda: "not found" in source.status(), 5, what="not found")
        assert str(device.link) in source.status()
        device.plug()
        wait_for(lambda: source.status() == "ok", 5, what="found")
        device.write(b"HELLO\r\n")
        wait_for(lambda: codes.payloads == ["HELLO"], 5, what="code")
    finally:
        source.stop()
        device.unplug()


def test_a_failing_callback_does_not_stop_the_scanner():
    sim = SimulatedSerialScanner(repeat_window_s=0)
    seen = []

    def flaky(payload, source):
        seen.append(payload)
        if payload == "BOOM":
            raise RuntimeError("downstream bug")

    sim.start(flaky)
    try:
        wait_for(lambda: sim.status() == "ok", 5)
        sim.show("BOOM")
        sim.show("NEXT")
        wait_for(lambda: seen == ["BOOM", "NEXT"], 5, what="both codes")
    finally:
        sim.stop()


def test_simulated_scanner_goes_through_the_real_reader_with_unicode():
    sim = SimulatedSerialScanner()
    codes = Codes()
    sim.start(codes)
    try:
        wait_for(lambda: sim.status() == "ok", 5)
        assert sim.port.startswith("/dev/pts/")
        sim.show("Jürgen-Ticket-€")
        wait_for(lambda: codes.payloads == ["Jürgen-Ticket-€"], 5, what="code")
    finally:
        sim.stop()


def test_line_assembler_limits_and_suffixes():
    lines = LineAssembler(max_line=8)
    assert lines.feed(b"12345678\r\n") == ["12345678"]
    assert lines.feed(b"123456789") == []  # already too long: will be dropped at its end
    assert lines.feed(b"more\r\nok\n") == ["ok"]
    assert lines.dropped == 1
    assert lines.feed(b"\r\n\r\n  \r") == []  # empty lines are not codes
    assert lines.feed(b"nosuffix") == [] and lines.flush() == ["nosuffix"]


def test_a_stopped_scanner_can_be_started_again():
    sim = SimulatedSerialScanner()
    codes = Codes()
    sim.start(codes)
    wait_for(lambda: sim.status() == "ok", 5)
    sim.show("FIRST")
    wait_for(lambda: codes.payloads == ["FIRST"], 5)
    sim.stop()
    assert sim.status() == "not started"
    sim.start(codes)
    try:
        wait_for(lambda: sim.status() == "ok", 5)
        sim.show("SECOND")
        wait_for(lambda: codes.payloads == ["FIRST", "SECOND"], 5)
    finally:
        sim.stop()


def test_showing_a_code_to_a_scanner_nobody_reads_does_not_block():
    sim = SimulatedSerialScanner()
    assert sim.show("NOBODY-LISTENS") is False


@settings(deadline=None)
@given(chunks=st.lists(st.binary(max_size=300), max_size=20), max_line=st.integers(1, 64))
def test_any_bytes_in_any_chunks_give_clean_bounded_lines(chunks, max_line):
    lines = LineAssembler(max_line)
    out = [line for chunk in chunks for line in lines.feed(chunk)] + lines.flush()
    for line in out:
        assert line and line == line.strip()
        assert len(line.encode("utf-8", errors="surrogatepass")) <= 3 * max_line  # U+FFFD is 3 bytes
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in line)
    whole = b"".join(chunks)
    if all(len(part) <= max_line for part in whole.replace(b"\r", b"\n").split(b"\n")):
        assert not lines.dropped


def test_a_port_that_is_not_a_scanner_gets_a_clear_status(tmp_path):
    not_a_tty = tmp_path / "notes.txt"
    not_a_tty.write_text("hello")
    for port, expected in (("", "No serial scanner port set"), (str(not_a_tty), f"Scanner on {not_a_tty} cannot be opened")):
        source = SerialScanSource("odd", port)
        source.start(lambda *_: None)
        try:
            wait_for(lambda s=source: s.status() != "not started", 5)
            assert source.status().startswith(expected), source.status()
        finally:
            source.stop()


def test_a_code_shown_the_moment_the_scanner_starts_is_not_lost():
    """pyserial empties the port's input when it opens it; a showing made before that must wait, not vanish."""
    import threading

    from drivers.scanner_serial import SimulatedSerialScanner

    got, seen = [], threading.Event()
    scanner = SimulatedSerialScanner(repeat_window_s=0.0)
    scanner.start(lambda payload, _source: (got.append(payload), seen.set()))
    try:
        assert scanner.show("TICKET-AT-ONCE")  # no wait for "ok" first: the scanner must handle it
        assert seen.wait(5), "the code shown at start was lost"
        assert got == ["TICKET-AT-ONCE"]
    finally:
        scanner.stop()
