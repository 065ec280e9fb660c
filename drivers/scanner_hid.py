"""Handheld scanners in keyboard (HID) mode, read through evdev with an exclusive grab.

The scanner "types" the code. We grab its input device so the keystrokes never reach a console,
and turn key codes into text ourselves (``KeyDecoder``, pure and testable without evdev): the
layout the scanner is set to (us or de), Shift and AltGr; a code ends at Enter/Tab or after a short
pause, because some scanners send no suffix at all.
"""

from __future__ import annotations

import errno
import logging
import queue
import select
import time

from drivers.scan_source import ScanSource

log = logging.getLogger(__name__)

EV_SYN, EV_KEY = 0, 1
SYN_DROPPED = 3
KEY_DOWN, KEY_UP = 1, 0
SHIFT_KEYS = {42, 54}  # LEFTSHIFT, RIGHTSHIFT
ALTGR_KEYS = {100}  # RIGHTALT
END_KEYS = {28, 96, 15}  # ENTER, KPENTER, TAB
KEY_ENTER, KEY_LEFTSHIFT, KEY_RIGHTALT = 28, 42, 100

# Rows of the main block by Linux key code: (first code, unshifted, shifted).
_US_ROWS = [
    (2, "1234567890-=", "!@#$%^&*()_+"),
    (16, "qwertyuiop[]", "QWERTYUIOP{}"),
    (30, "asdfghjkl;'`", 'ASDFGHJKL:"~'),
    (43, "\\zxcvbnm,./", "|ZXCVBNM<>?"),
]
_DE_ROWS = [
    (2, "1234567890ß´", '!"§$%&/()=?`'),
    (16, "qwertzuiopü+", "QWERTZUIOPÜ*"),
    (30, "asdfghjklöä^", "ASDFGHJKLÖÄ°"),
    (43, "#yxcvbnm,.-", "'YXCVBNM;:_"),
]
_DE_ALTGR = {3: "²", 4: "³", 8: "{", 9: "[", 10: "]", 11: "}", 12: "\\", 16: "@", 18: "€", 27: "~", 86: "|", 50: "µ"}
_KEYPAD = {71: "7", 72: "8", 73: "9", 74: "-", 75: "4", 76: "5", 77: "6", 78: "+", 79: "1", 80: "2",
           81: "3", 82: "0", 83: ".", 55: "*", 98: "/"}


def _build(rows, extra: dict[int, tuple[str, str]]) -> dict[int, tuple[str, str]]:
    table = {code: (ch, ch) for code, ch in _KEYPAD.items()}
    for first, plain, shifted in rows:
        for i, (p, s) in enumerate(zip(plain, shifted, strict=True)):
            table[first + i] = (p, s)
    table[57] = (" ", " ")  # SPACE
    table.update(extra)
    return table


LAYOUTS: dict[str, tuple[dict[int, tuple[str, str]], dict[int, str]]] = {
    "us": (_build(_US_ROWS, {}), {}),
    "de": (_build(_DE_ROWS, {86: ("<", ">")}), _DE_ALTGR),
}


class KeyDecoder:
    """Key events in, scanned codes out. ``t`` is any monotonic time in seconds."""

    def __init__(self, layout: str = "us", max_len: int = 4096, end_pause_s: float = 0.08):
        if layout not in LAYOUTS:
            raise ValueError(f"unknown keyboard layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
        self.keys, self.altgr_keys = LAYOUTS[layout]
        self.max_len = max_len
        self.end_pause_s = end_pause_s
        self._chars: list[str] = []
        self._overflow = False
        self._shift: set[int] = set()
        self._altgr = False
        self._last = 0.0

    @property
    def pending(self) -> bool:
        return bool(self._chars) or self._overflow

    def feed(self, ev_type: int, code: int, value: int, t: float) -> list[str]:
        if ev_type == EV_SYN and code == SYN_DROPPED:
            # The kernel's buffer for us overflowed (we read too late): keys of this code are lost, so
            # what we have is not the code. Drop it and the rest of it, never admit a fragment.
            log.warning("event=hid_events_dropped pending_chars=%d", len(self._chars))
            self._chars.clear()
            self._overflow = True
            self._last = t
            return []
        if ev_type != EV_KEY:
            return []
        if code in SHIFT_KEYS:
            (self._shift.add if value else self._shift.discard)(code)
            return []
        if code in ALTGR_KEYS:
            self._altgr = bool(value)
            return []
        if value != KEY_DOWN:  # key up, or auto-repeat of a held key
            return []
        out = self.poll(t)
        self._last = t
        if code in END_KEYS:
            return out + self.flush()
        if self._altgr:
            ch = self.altgr_keys.get(code)
        else:
            pair = self.keys.get(code)
            ch = pair[1 if self._shift else 0] if pair else None
        if ch is None:
            log.debug("event=hid_unmapped_key code=%d", code)
        elif not self._overflow:
            self._chars.append(ch)
            if len(self._chars) > self.max_len:
                log.warning("event=scan_line_too_long max_chars=%d", self.max_len)
                self._chars.clear()
                self._overflow = True
        return out

    def poll(self, t: float) -> list[str]:
        """End the pending code if the scanner has been quiet for ``end_pause_s``."""
        if self.pending and t - self._last >= self.end_pause_s:
            return self.flush()
        return []

    def flush(self) -> list[str]:
        text = "".join(self._chars).strip()
        dropped = self._overflow
        self._chars.clear()
        self._overflow = False
        return [text] if text and not dropped else []


def text_to_key_events(text: str, layout: str = "us", enter: bool = True,
                       skip_untypeable: bool = False) -> list[tuple[int, int, int]]:
    """The (type, code, value) events a scanner in ``layout`` sends to type ``text`` (and Enter).
    A character the layout has no key for raises ValueError, or is left out with ``skip_untypeable``
    (as a real scanner in keyboard mode would drop it)."""
    keys, altgr_keys = LAYOUTS[layout]
    plain = {ch: code for code, (ch, _) in sorted(keys.items(), reverse=True)}
    shifted = {s: code for code, (p, s) in sorted(keys.items(), reverse=True) if s != p}
    altgr = {ch: code for code, ch in altgr_keys.items()}
    events: list[tuple[int, int, int]] = []
    for ch in text:
        if ch in plain:
            events += [(EV_KEY, plain[ch], KEY_DOWN), (EV_KEY, plain[ch], KEY_UP)]
        elif ch in shifted:
            code = shifted[ch]
            events += [(EV_KEY, KEY_LEFTSHIFT, KEY_DOWN), (EV_KEY, code, KEY_DOWN), (EV_KEY, code, KEY_UP),
                       (EV_KEY, KEY_LEFTSHIFT, KEY_UP)]
        elif ch in altgr:
            code = altgr[ch]
            events += [(EV_KEY, KEY_RIGHTALT, KEY_DOWN), (EV_KEY, code, KEY_DOWN), (EV_KEY, code, KEY_UP),
                       (EV_KEY, KEY_RIGHTALT, KEY_UP)]
        elif not skip_untypeable:
            raise ValueError(f"{ch!r} cannot be typed on the {layout} layout")
    if enter:
        events += [(EV_KEY, KEY_ENTER, KEY_DOWN), (EV_KEY, KEY_ENTER, KEY_UP)]
    return events


def open_problem(path: str, error: OSError) -> str:
    if not path:
        return "No keyboard-mode scanner set — set checkin.hid_scanner.device (ls /dev/input/by-id/)"
    if error.errno in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return f"Scanner not found at {path} — check cable"
    if error.errno == errno.EACCES:
        return f"Scanner at {path} cannot be read (permission denied) — add the kit's user to the input group"
    if error.errno == errno.EBUSY:
        return f"Scanner at {path} is grabbed by another program — stop it"
    return f"Scanner at {path} cannot be opened ({error.strerror or error}) — unplug it and plug it in again"


class HidScanSource(ScanSource):
    """A keyboard-mode scanner through evdev; the device is grabbed so keys do not reach a console."""

    kind = "hid"

    def __init__(self, name: str, device: str, layout: str = "us", end_pause_s: float = 0.08,
                 repeat_window_s: float = 2.0, max_len: int = 4096):
        super().__init__(name, repeat_window_s)
        self.device_path = device
        self.decoder = KeyDecoder(layout, max_len, end_pause_s)
        self._device = None

    def _run(self) -> None:
        try:
            import evdev
        except ImportError:
            self._set_status("Keyboard-mode scanners need python3-evdev — sudo apt install python3-evdev")
            return
        while not self._stopping.is_set():
            try:
                if not self.device_path:
                    raise FileNotFoundError(errno.ENOENT, "not set")
                self._device = evdev.InputDevice(self.device_path)
                self._device.grab()
            except OSError as e:
                self._set_status(open_problem(self.device_path, e))
                self._close()
                if not self._wait(1.0):
                    return
                continue
            self._set_status("ok")
            try:
                self._read(self._device)
            except OSError as e:
                log.warning("event=scanner_disconnected source=%s device=%s error=%r", self.name, self.device_path, str(e))
                self._set_status(f"Scanner at {self.device_path} disconnected — check cable")
            finally:
                self._close()

    def _read(self, device) -> None:
        wait = max(0.01, self.decoder.end_pause_s / 2)
        while not self._stopping.is_set():
            ready, _, _ = select.select([device.fd], [], [], wait)
            now = time.monotonic()
            codes = []
            if ready:
                try:
                    events = list(device.read())
                except BlockingIOError:  # woken without events: not a disconnect
                    events = []
                for ev in events:
                    codes += self.decoder.feed(ev.type, ev.code, ev.value, now)
            codes += self.decoder.poll(now)
            for code in codes:
                self._emit(code)

    def _close(self) -> None:
        device, self._device = self._device, None
        if device is not None:
            for release in (device.ungrab, device.close):
                try:
                    release()
                except OSError:
                    pass


class SimulatedHidScanner(ScanSource):
    """A keyboard-mode scanner whose ``show`` types the code as key events into the real KeyDecoder."""

    kind = "hid"

    def __init__(self, name: str = "hid-scanner", layout: str = "us", end_pause_s: float = 0.08,
                 repeat_window_s: float = 2.0, enter: bool = True):
        super().__init__(name, repeat_window_s)
        self.layout = layout
        self.enter = enter
        self.decoder = KeyDecoder(layout, end_pause_s=end_pause_s)
        self._typed: queue.Queue[list[tuple[int, int, int]]] = queue.Queue()

    def show(self, payload: str) -> None:
        """Type ``payload``; characters the layout cannot type are left out, as on a real scanner."""
        self.repeats.forget(payload)  # a deliberate new scan, even of the ticket just read
        self._typed.put(text_to_key_events(payload, self.layout, enter=self.enter, skip_untypeable=True))

    def _run(self) -> None:
        self._set_status("ok")
        while not self._stopping.is_set():
            try:
                events = self._typed.get(timeout=self.decoder.end_pause_s / 2)
            except queue.Empty:
                events = []
            codes = []
            for ev in events:
                codes += self.decoder.feed(*ev, time.monotonic())
            codes += self.decoder.poll(time.monotonic())
            for code in codes:
                self._emit(code)
