"""Which process said it: a start id (boot id, pid, start time) carried by health and status payloads.

A retained message outlives its process: the broker keeps it across a restart of the kit and hands
it to a later run or to another kit that happens to use the same kit id. The start id lets a reader
on the same machine tell "the process that is running now" from "something said this earlier".
"""

from __future__ import annotations

import os
from pathlib import Path

_cache: dict[int, str] = {}


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may hold spaces): state is [0]."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2:].split()


def _start_ticks(pid: int) -> str:
    fields = _stat(pid)
    return fields[19] if fields and len(fields) > 19 else "0"  # starttime: clock ticks after boot


def start_id() -> str:
    """This process's start id, ``<boot id>:<pid>:<start ticks>`` (unique per process per machine)."""
    pid = os.getpid()
    if pid not in _cache:  # per pid: a forked child is another process
        _cache[pid] = f"{boot_id()}:{pid}:{_start_ticks(pid)}"
    return _cache[pid]


def parse(sid: object) -> tuple[str, int, str] | None:
    if not isinstance(sid, str) or sid.count(":") != 2 or len(sid) > 80:
        return None
    boot, pid, ticks = sid.split(":")
    return (boot, int(pid), ticks) if pid.isdigit() else None


def is_running(sid: object) -> bool:
    """True when ``sid`` names a process running now on this machine (same boot, pid and start time)."""
    parts = parse(sid)
    if parts is None or not parts[0] or parts[0] != boot_id():
        return False
    fields = _stat(parts[1])
    return bool(fields) and fields[0] not in ("Z", "X") and _start_ticks(parts[1]) == parts[2]


def is_sibling(sid: object) -> bool:
    """Running now and a child of the same parent as us (the same `fieldkit up`, or systemd)."""
    parts = parse(sid)
    if not is_running(sid) or parts is None:
        return False
    fields = _stat(parts[1])
    return bool(fields) and fields[1] == str(os.getppid())
