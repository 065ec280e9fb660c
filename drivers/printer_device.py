"""Asking a printer on a device file about its paper: ESC/POS DLE EOT 4, answered on the same file.

A USB printer bound to the kernel's usblp driver (``/dev/usb/lp0``) and a serial line are both
two-way: what is written goes to the printer and what the printer sends back can be read. So the
``file`` backend asks the real-time paper sensor status, like the serial and USB backends do through
python-escpos, without pyusb or detaching the kernel's driver. A regular file, a device opened
write-only, or a printer that never answers gives ``None``: the kit then prints without knowing.
"""

from __future__ import annotations

import os
import select
import stat
import time

PAPER_SENSOR_QUERY = b"\x10\x04\x04"  # DLE EOT 4: roll paper sensor status
# Bits of the answer (ESC/POS): 0x12 always set; 0x0C paper near its end; 0x60 paper out.
_FIXED, _LOW, _OUT = 0x12, 0x0C, 0x60


def paper_from_status(byte: int) -> str:
    """ok | low | out | unknown from the one-byte answer to DLE EOT 4."""
    if byte & 0x93 != _FIXED:  # bits 1 and 4 set, 0 and 7 clear: otherwise not an answer to our question
        return "unknown"
    if byte & _OUT:
        return "out"
    if byte & _LOW:
        return "low"
    return "ok"


def ask_paper_sensor(path: str, timeout: float = 0.5) -> int | None:
    """The printer's answer byte, or None when ``path`` is not a two-way device or nothing came back."""
    try:
        if not stat.S_ISCHR(os.stat(path).st_mode):
            return None
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return None
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while poller.poll(0):  # an answer left over from an earlier question is not this one's
            if not _read(fd):
                break
        os.write(fd, PAPER_SENSOR_QUERY)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if poller.poll(int(left * 1000) + 1):
                data = _read(fd)
                if data:
                    return data[-1]
        return None
    except OSError:
        return None
    finally:
        os.close(fd)


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 64)
    except BlockingIOError:
        return b""
