"""What a running `fieldkit up` records for the commands run beside it: its broker, its pid, its services.

On a development machine `fieldkit up` starts a private broker on a free port; the CLI, the updater and
the runners find it here (``<data>/broker.json``), without importing the supervisor.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from kit.config import Config

BROKER_FILE = "broker.json"  # under the data dir


def running_record(config: Config) -> dict | None:
    """What a running `fieldkit up` of this FIELDKIT_HOME recorded (broker, pid, services), if one runs."""
    try:
        rec = json.loads((config.data_dir / BROKER_FILE).read_text())
        rec["host"], rec["port"], rec["pid"] = str(rec["host"]), int(rec["port"]), int(rec["pid"])
        os.kill(rec["pid"], 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    # A record left by a `fieldkit up` that was killed, or by the boot before a power cut, names a pid the
    # kernel may since have given to another process: the updater would send that process SIGHUP.
    if "started" in rec:
        return rec if rec["started"] is not None and process_identity(rec["pid"]) == rec["started"] else None
    return rec if _runs_fieldkit_up(rec["pid"]) else None  # written by a release before the identity


def process_identity(pid: int) -> str | None:
    """This boot's id and the process's start time: a pid reused after a crash or a reboot has another."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        started = stat.rsplit(")", 1)[1].split()[19]  # field 22 (starttime); the name in () may hold spaces
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except (OSError, IndexError):
        return None
    return f"{boot}:{started}"


def _runs_fieldkit_up(pid: int) -> bool:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    return "up" in args[1:]


def recorded_broker(config: Config) -> tuple[str, int] | None:
    """The broker a running `fieldkit up` of this FIELDKIT_HOME uses, if one runs."""
    rec = running_record(config)
    return None if rec is None else (rec["host"], rec["port"])


def with_recorded_broker(config: Config) -> Config:
    """On a development machine, point the CLI at the broker `fieldkit up` started (unless told otherwise)."""
    if config.paths.home is None or config.sources.get("mqtt.port") != "default":
        return config
    found = recorded_broker(config)
    if found is None:
        return config
    return config.with_values(mqtt__host=found[0], mqtt__port=found[1])
