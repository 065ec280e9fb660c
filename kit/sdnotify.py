"""sd_notify without libsystemd: READY=1, WATCHDOG=1, STATUS=... to ``$NOTIFY_SOCKET``."""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract socket
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(message.encode(), address)
        except OSError:
            return False
    return True


def watchdog_interval(default_seconds: float) -> float:
    """Half of systemd's WATCHDOG_USEC (when set for this process), else half of the default."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if usec and (not pid or pid == str(os.getpid())):
        return int(usec) / 1_000_000 / 2
    return default_seconds / 2
