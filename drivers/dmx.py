"""DMX512 out: an ENTTEC DMX USB Pro on a serial port, Art-Net over UDP, or a simulated widget.

ENTTEC "send DMX" (label 6): ``7E 06 <len LSB> <len MSB> 00 <ch1…chN> E7`` with len = N + 1, the
leading 00 being the DMX start code. The widget repeats the last frame by itself, so we send only
on change. A widget that is unplugged is reopened (by its path, e.g. /dev/serial/by-id/…) when it
comes back, and gets the current frame at once. The simulated widget is a pseudo-terminal whose far
end parses the very same bytes, so a demo exercises the real framing.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time
import tty
from pathlib import Path

from drivers.base import DeviceUnavailable, choose_backend

log = logging.getLogger("fieldkit.dmx")

START, END, LABEL_SEND_DMX = 0x7E, 0xE7, 6
ARTNET_PORT = 6454


def enttec_frame(levels: bytes) -> bytes:
    """One ENTTEC DMX USB Pro "send DMX" message for channels 1..N."""
    if not 1 <= len(levels) <= 512:
        raise ValueError("a DMX frame has 1 to 512 channels")
    length = len(levels) + 1  # the start code counts
    return bytes([START, LABEL_SEND_DMX, length & 0xFF, length >> 8, 0x00]) + bytes(levels) + bytes([END])


def parse_enttec(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Split a byte stream into the channel data of each complete "send DMX" message, plus leftovers.

    Bytes before a start delimiter and messages with another label or a bad end byte are dropped,
    which is what a widget does with line noise.
    """
    frames: list[bytes] = []
    i = 0
    while True:
        start = buffer.find(bytes([START]), i)
        if start < 0:
            return frames, b""
        if len(buffer) - start < 5:
            return frames, buffer[start:]
        label, length = buffer[start + 1], buffer[start + 2] | buffer[start + 3] << 8
        end = start + 4 + length
        if end >= len(buffer):
            if length > 513:
                i = start + 1
                continue
            return frames, buffer[start:]
        if buffer[end] == END and label == LABEL_SEND_DMX and length >= 1 and buffer[start + 4] == 0:
            frames.append(bytes(buffer[start + 5:end]))
            i = end + 1
        else:
            i = start + 1


def artnet_packet(levels: bytes, universe: int = 0, sequence: int = 0, physical: int = 0) -> bytes:
    """An ArtDmx packet: ``Art-Net\\0``, opcode 0x5000 (LE), version 14, seq, physical, universe, length (BE)."""
    data = bytes(levels) + (b"\x00" if len(levels) % 2 else b"")  # the length must be even
    return (b"Art-Net\x00" + (0x5000).to_bytes(2, "little") + (14).to_bytes(2, "big")
            + bytes([sequence & 0xFF, physical & 0xFF, universe & 0xFF, (universe >> 8) & 0x7F])
            + len(data).to_bytes(2, "big") + data)


class DmxPort:
    """What the cue engine writes to: the full frame (channels 1..N) whenever a level changed."""

    name = "dmx"

    def __init__(self) -> None:
        self.last: bytes | None = None
        self.frames_sent = 0
        self.available = True
        self.detail = ""

    def send(self, levels: bytes) -> None:
        raise NotImplementedError

    def maintain(self) -> None:
        """Called about once a second: reconnect, refresh. Default: nothing to do."""

    def close(self) -> None:
        pass

    def status(self) -> dict:
        return {"backend": self.name, "available": self.available, "detail": self.detail, "frames_sent": self.frames_sent}


class EnttecDmxPro(DmxPort):
    name = "enttec"

    def __init__(self, path: str, reopen_every: float = 2.0):
        super().__init__()
        self.path, self.reopen_every = path, reopen_every
        self._serial = None
        self._last_attempt = -1e9
        self._lock = threading.Lock()
        self._open()

    def _open(self) -> bool:
        import serial

        self._last_attempt = time.monotonic()
        try:
            # The virtual port ignores the speed; 57600 is what ENTTEC's examples use.
            self._serial = serial.Serial(self.path, 57600, timeout=0, write_timeout=1)
        except (serial.SerialException, OSError) as e:
            self._serial = None
            if self.available:
                log.warning("event=dmx_unavailable path=%s error=%r", self.path, str(e))
            self.available = False
            self.detail = f"DMX widget not found at {self.path}: check the USB cable; lights hold until it is back"
            return False
        if not self.available:
            log.info("event=dmx_reconnected path=%s", self.path)
        self.available, self.detail = True, ""
        return True

    def send(self, levels: bytes) -> None:
        with self._lock:
            self.last = bytes(levels)
            if self._serial is None and (time.monotonic() - self._last_attempt < self.reopen_every or not self._open()):
                return
            self._write(enttec_frame(self.last))

    def _write(self, frame: bytes) -> None:
        import serial

        try:
            self._serial.write(frame)
            self._serial.flush()
            self.frames_sent += 1
        except (serial.SerialException, OSError) as e:
            log.warning("event=dmx_lost path=%s error=%r", self.path, str(e))
            self._drop()

    def _drop(self) -> None:
        try:
            self._serial.close()
        except Exception:
            pass
        self._serial = None
        self.available = False
        self.detail = f"DMX widget at {self.path} was unplugged: lights hold until it is back"

    def maintain(self) -> None:
        with self._lock:
            due = self._serial is None and time.monotonic() - self._last_attempt >= self.reopen_every
            if due and self._open() and self.last is not None:
                self._write(enttec_frame(self.last))

    def close(self) -> None:
        with self._lock:
            if self._serial is not None:
                self._serial.close()
                self._serial = None


class ArtNetSender(DmxPort):
    """Art-Net to one node (or a broadcast address); resent every second so nodes do not time out."""

    name = "artnet"

    def __init__(self, host: str, port: int = ARTNET_PORT, universe: int = 0):
        super().__init__()
        self.address, self.universe = (host, port), universe
        self.sequence = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self._last_sent = 0.0

    def send(self, levels: bytes) -> None:
        self.last = bytes(levels)
        self.sequence = self.sequence % 255 + 1  # 0 means "sequencing off"
        try:
            self._sock.sendto(artnet_packet(self.last, self.universe, self.sequence), self.address)
            self.frames_sent += 1
            self.available, self.detail = True, ""
        except OSError as e:
            if self.available:
                log.warning("event=artnet_send_failed address=%s:%s error=%r", *self.address, str(e))
            self.available, self.detail = False, f"Art-Net to {self.address[0]} failed: {e.strerror}"
        self._last_sent = time.monotonic()

    def maintain(self) -> None:
        if self.last is not None and time.monotonic() - self._last_sent >= 1.0:
            self.send(self.last)

    def close(self) -> None:
        self._sock.close()


class SimulatedDmxWidget:
    """A DMX USB Pro that is a pseudo-terminal: it parses what the driver writes and keeps the frames.

    ``path`` is a symlink (like /dev/serial/by-id/…) to the current pty; ``unplug()`` and ``plug()``
    make the driver see a widget vanish and come back.
    """

    def __init__(self, link: Path | str, keep: int = 1000):
        self.link = Path(link)
        self.frames: list[bytes] = []
        self.keep = keep
        self._buffer = b""
        self._lock = threading.Lock()
        self._master = -1
        self._slave = -1
        self._reading = False
        self._reader: threading.Thread | None = None
        self.plug()

    @property
    def path(self) -> str:
        return str(self.link)

    def plug(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.link.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.link.with_name(self.link.name + ".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(self._slave))
        os.replace(tmp, self.link)

    def unplug(self) -> None:
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    def start_reader(self) -> None:
        """Consume frames on a thread, as a real widget does, so ``levels`` is always the newest frame."""
        self._reading = True

        def loop() -> None:
            while self._reading:
                if self._master < 0:
                    time.sleep(0.05)
                    continue
                try:
                    self.read(0.2)
                except (OSError, ValueError):  # unplugged under our feet
                    time.sleep(0.05)

        self._reader = threading.Thread(target=loop, name="dmx-widget-sim", daemon=True)
        self._reader.start()

    def read(self, timeout: float = 0.0) -> list[bytes]:
        """Frames that arrived since the last read (waits up to ``timeout`` for the first byte)."""
        got: list[bytes] = []
        while self._master >= 0:
            ready, _, _ = select.select([self._master], [], [], timeout)
            if not ready:
                break
            try:
                chunk = os.read(self._master, 65536)
            except OSError:
                break
            timeout = 0.01  # drain what the writer is still writing
            with self._lock:
                frames, self._buffer = parse_enttec(self._buffer + chunk)
                got.extend(frames)
                self.frames = (self.frames + frames)[-self.keep:]
        return got

    @property
    def levels(self) -> bytes:
        with self._lock:
            return self.frames[-1] if self.frames else b""

    def close(self) -> None:
        self._reading = False
        if self._reader is not None:  # let it leave select() before its descriptor can be reused
            self._reader.join(timeout=2)
        self.unplug()
        self.link.unlink(missing_ok=True)


class SimulatedDmx(EnttecDmxPro):
    """The product's simulated backend: the real ENTTEC driver writing into a simulated widget."""

    name = "sim"

    def __init__(self, link: Path | str):
        self.widget = SimulatedDmxWidget(link)
        self.widget.start_reader()
        super().__init__(self.widget.path)

    def close(self) -> None:
        super().close()
        self.widget.close()


def open_dmx(config) -> DmxPort | None:
    """The DMX output chosen by ``cues.dmx.backend``; None when the kit has no DMX."""
    factories = {
        "enttec": lambda: EnttecDmxPro(config["cues.dmx.port"]),
        "artnet": lambda: ArtNetSender(config["cues.artnet.host"], config["cues.artnet.port"], config["cues.artnet.universe"]),
        "sim": lambda: SimulatedDmx(config.data_dir / "run" / "dmx-widget"),
        "none": lambda: None,
    }
    return choose_backend(config, "cues.dmx.backend", factories)


def widget_present(path: str) -> bool:
    return Path(path).exists()


__all__ = ["ArtNetSender", "DeviceUnavailable", "DmxPort", "EnttecDmxPro", "SimulatedDmx", "SimulatedDmxWidget",
           "artnet_packet", "enttec_frame", "open_dmx", "parse_enttec"]
