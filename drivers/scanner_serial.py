"""Handheld scanners in USB serial (CDC) mode: one code per line, ended by CR or CRLF.

The reader accepts any bytes: lines are split on CR and/or LF, control bytes (STX/ETX framing some
scanners add, NULs from a flaky cable) are dropped, invalid UTF-8 becomes U+FFFD, and a line longer
than ``max_line`` is discarded whole (logged) rather than reported cut short.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import select
import time
import tty

from drivers.scan_source import ScanSource

log = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
RETRY_S = (0.2, 0.5, 1.0, 2.0)  # back-off while the scanner is unplugged


def clean_line(raw: bytes) -> str:
    """A received line as text: UTF-8 (invalid bytes replaced), control characters removed, trimmed."""
    return _CONTROL.sub("", raw.decode("utf-8", errors="replace")).strip()


class LineAssembler:
    """Bytes in, complete lines out; never raises, never grows past ``max_line``."""

    def __init__(self, max_line: int = 4096):
        self.max_line = max_line
        self._buf = bytearray()
        self._overflow = False  # inside a line that is already too long: drop until its end
        self.dropped = 0

    def feed(self, data: bytes) -> list[str]:
        lines = []
        start = 0
        for i, byte in enumerate(data):
            if byte in (0x0D, 0x0A):
                self._take(data[start:i], lines)
                start = i + 1
        rest = data[start:]
        if not self._overflow:
            self._buf += rest
            if len(self._buf) > self.max_line:
                self._drop()
        return lines

    def flush(self) -> list[str]:
        """End the pending line (a scanner configured without a suffix goes quiet instead)."""
        lines: list[str] = []
        if self._buf or self._overflow:
            self._take(b"", lines)
        return lines

    @property
    def pending(self) -> bool:
        return bool(self._buf) or self._overflow

    def _drop(self) -> None:
        self.dropped += 1
        log.warning("event=scan_line_too_long max_bytes=%d", self.max_line)
        self._buf.clear()
        self._overflow = True

    def _take(self, tail: bytes, lines: list[str]) -> None:
        if not self._overflow:
            if len(self._buf) + len(tail) > self.max_line:
                self._drop()
            else:
                self._buf += tail
                text = clean_line(bytes(self._buf))
                if text:
                    lines.append(text)
        self._buf.clear()
        self._overflow = False


def open_problem(port: str, error: Exception) -> str:
    """What a lead should do about a port that cannot be opened."""
    if not port:
        return "No serial scanner port set — set checkin.serial_scanner.port (ls /dev/serial/by-id/)"
    code = getattr(error, "errno", None)
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO) or "No such file" in str(error):
        return f"Scanner not found on {port} — check cable"
    if code == errno.EACCES or "Permission denied" in str(error):
        return f"Scanner on {port} cannot be opened (permission denied) — add the kit's user to the dialout group"
    if code == errno.EBUSY:
        return f"Scanner on {port} is in use by another program — stop it"
    return f"Scanner on {port} cannot be opened ({error}) — unplug it and plug it in again"


class SerialScanSource(ScanSource):
    """Reads a USB-CDC (or RS-232) scanner with pyserial; reopens the port after it disappears."""

    kind = "serial"

    def __init__(self, name: str, port: str, baudrate: int = 9600, max_line: int = 4096,
                 repeat_window_s: float = 2.0, end_pause_s: float = 0.3):
        super().__init__(name, repeat_window_s)
        self.port = port
        self.baudrate = baudrate
        self.max_line = max_line
        self.end_pause_s = end_pause_s
        self._serial = None

    def _run(self) -> None:
        import serial

        attempt = 0
        while not self._stopping.is_set():
            try:
                self._serial = serial.Serial(self.port, self.baudrate, timeout=0.1)
            except (serial.SerialException, OSError, ValueError) as e:
                self._set_status(open_problem(self.port, e))
                if not self._wait(RETRY_S[min(attempt, len(RETRY_S) - 1)]):
                    return
                attempt += 1
                continue
            attempt = 0
            self._set_status("ok")
            log.info("event=scanner_connected source=%s port=%s", self.name, self.port)
            try:
                self._read_lines(self._serial)
            except (serial.SerialException, OSError) as e:
                log.warning("event=scanner_disconnected source=%s port=%s error=%r", self.name, self.port, str(e))
                self._set_status(f"Scanner on {self.port} disconnected — check cable")
            finally:
                self._close()

    def _read_lines(self, ser) -> None:
        lines = LineAssembler(self.max_line)
        last_byte = time.monotonic()
        while not self._stopping.is_set():
            data = ser.read(max(1, min(ser.in_waiting, 65536)))
            now = time.monotonic()
            if data:
                last_byte = now
                for line in lines.feed(data):
                    self._emit(line)
            elif lines.pending and now - last_byte >= self.end_pause_s:
                for line in lines.flush():
                    self._emit(line)

    def _close(self) -> None:
        ser, self._serial = self._serial, None
        if ser is not None:
            try:
                ser.close()
            except Exception as e:  # closing a vanished device can fail in odd ways
                log.debug("event=scanner_close_failed error=%r", e)


class SimulatedSerialScanner(SerialScanSource):
    """A scanner on a pseudo-terminal: ``show`` writes the code with a CRLF suffix, like a real one.

    The real serial reader reads the other end, so the demo and tests run the Pi's code path.
    """

    def __init__(self, name: str = "serial-scanner", repeat_window_s: float = 2.0, max_line: int = 4096,
                 suffix: bytes = b"\r\n"):
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line editing before the reader takes over
        os.set_blocking(self._master, False)  # write_bytes waits with select, never forever
        super().__init__(name, os.ttyname(self._slave), repeat_window_s=repeat_window_s, max_line=max_line)
        self.suffix = suffix

    def show(self, payload: str) -> bool:
        """The scanner reads a code: the text goes out as UTF-8 plus the suffix."""
        self.repeats.forget(payload)  # a deliberate new scan, even of the ticket just read
        return self.write_bytes(payload.encode("utf-8", errors="replace") + self.suffix)

    def write_bytes(self, data: bytes, timeout: float = 2.0) -> bool:
        """Raw bytes from the 'scanner' (junk, partial lines) for demos of bad input. False (and a log
        line) when nobody reads the scanner, instead of blocking the caller."""
        if not (self._thread and self._thread.is_alive()):
            log.warning("event=sim_scanner_not_started source=%s bytes=%d", self.name, len(data))
            return False
        deadline = time.monotonic() + timeout
        # pyserial empties the input when it opens the port: bytes written before that are lost.
        while self.status() != "ok":
            if time.monotonic() > deadline or self._stopping.wait(0.02):
                log.warning("event=sim_scanner_port_not_open source=%s status=%r", self.name, self.status())
                return False
        view = memoryview(data)
        while view:
            _, writable, _ = select.select([], [self._master], [], max(0.0, deadline - time.monotonic()))
            if not writable:
                log.warning("event=sim_scanner_write_timeout source=%s unsent=%d", self.name, len(view))
                return False
            view = view[os.write(self._master, view[:4096]):]
        return True

    def __del__(self) -> None:
        for fd in (getattr(self, "_master", None), getattr(self, "_slave", None)):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
