"""sd_notify without libsystemd: READY=1, WATCHDOG=1, STATUS=... to ``$NOTIFY_SOCKET``."""

from __future__ import annotations

import os
import socket

_claimed = False
_address: str | None = None


def claim() -> None:
    """Keep ``$NOTIFY_SOCKET`` for this process alone (the unit's main process, at its start).

    A program the service starts (a `fieldkit` CLI for a report, the updater) inherits the variable and
    would speak for the unit; systemd refuses it ("reception only permitted for main PID") and logs a
    warning for every message, as the image test's journal showed for the web's children."""
    global _claimed, _address
    _claimed, _address = True, os.environ.pop("NOTIFY_SOCKET", None)


def notify(message: str) -> bool:
    address = _address if _claimed else os.environ.get("NOTIFY_SOCKET")
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
