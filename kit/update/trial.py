"""The trial of a new release: every service healthy on the new slot and `fieldkit doctor` without FAIL.

"Healthy" is the kit's own verdict: the retained ``fieldkit/<kit>/status`` says online, and it was said
by a status process running from the new slot (its start id names a live process whose command starts
with the slot's python), so a retained "online" of the old release never passes a broken new one.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from kit import topics
from kit.startid import is_running, parse
from kit.up_record import running_record, with_recorded_broker
from kit.update.slots import clean_env

log = logging.getLogger("fieldkit.update")


def supervisor_pid(config) -> int | None:
    """The pid of a running `fieldkit up` of this data dir (it records itself in broker.json)."""
    rec = running_record(config)
    return None if rec is None else rec["pid"]


def restart_supervisor(config) -> bool:
    """Ask `fieldkit up` to stop its services and re-execute itself from ``current`` (SIGHUP)."""
    pid = supervisor_pid(config)
    if pid is None:
        return False
    os.kill(pid, signal.SIGHUP)
    return True


def process_command(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def runs_from(sid: object, slot: Path) -> bool:
    parts = parse(sid)
    if parts is None or not is_running(sid):
        return False
    cmd = process_command(parts[1])
    # <slot>/bin/python, or releases/current/bin/python: the venv's directory, links resolved (not the python)
    return bool(cmd) and os.path.realpath(os.path.dirname(os.path.dirname(cmd[0]))) == os.path.realpath(slot)


class StatusWatch:
    """The latest retained kit status, over the kit's broker (followed when `fieldkit up` moves it)."""

    def __init__(self, config):
        self.config = config
        self.latest: dict = {}
        self.bus = None
        self.port = None
        self.lock = threading.Lock()

    def _connect(self) -> None:
        from kit.bus import Bus

        config = with_recorded_broker(self.config)
        if self.bus is not None and self.port == config["mqtt.port"]:
            return
        self.close()
        self.port = config["mqtt.port"]
        self.bus = Bus.from_config(config, "update", will=False)

        def on_status(_topic: str, payload: dict) -> None:
            with self.lock:
                self.latest = payload

        self.bus.subscribe(topics.status(config.kit_id), on_status)
        self.bus.start(wait=2)

    def status(self) -> dict:
        self._connect()
        with self.lock:
            return dict(self.latest)

    def close(self) -> None:
        if self.bus is not None:
            self.bus.stop(clean=False)
            self.bus = None


def doctor_failures(config, slot: Path) -> list[str]:
    python = slot / "bin" / "python"
    env = clean_env()

    found = with_recorded_broker(config)
    env["FIELDKIT_MQTT_HOST"], env["FIELDKIT_MQTT_PORT"] = str(found["mqtt.host"]), str(found["mqtt.port"])
    try:
        done = subprocess.run(
            [str(python), "-m", "kit", "doctor", "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=str(config.data_dir),
        )
        checks = json.loads(done.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError) as e:
        return [f"`fieldkit doctor` of the new release did not run ({e})"]
    return [f"{c['name']}: {c['message']}" for c in checks if c.get("level") == "FAIL"]


def running_services(config, wait: float = 10.0) -> list[str]:
    """The services the kit runs now: each must be healthy again after the switch.

    What `fieldkit up` recorded (its `--only` list), else those heard from in the kit's status: on a busy
    kit the retained status can take seconds, and none heard would make the trial ask for every service."""
    rec = running_record(config)
    if rec and isinstance(rec.get("services"), list) and all(isinstance(n, str) for n in rec["services"]):
        # status publishes the summary and never lists itself: hearing it from the new slot is its health
        return sorted(n for n in rec["services"] if n != "status")
    watch = StatusWatch(config)
    try:
        end = time.time() + wait
        while time.time() < end and not watch.status():
            time.sleep(0.1)
        services = watch.status().get("services") or {}
    finally:
        watch.close()
    return sorted(n for n, s in services.items() if s not in ("unknown", "offline"))


CRASH_LOOP_RESTARTS = 3  # a unit systemd restarted this often since the switch is not coming up
UNIT_CHECK_SECONDS = 3.0
UNIT_GRACE_SECONDS = 10.0  # after the switch, before a unit that is not running counts against the release


@dataclass(frozen=True)
class UnitState:
    active: str  # systemd's ActiveState: active, activating, inactive, failed, ...
    restarts: int
    kind: str = ""  # Type=: simple, notify, oneshot, ...


def parse_unit_states(show_output: str) -> dict[str, UnitState]:
    """``systemctl show -p Id -p ActiveState -p NRestarts ...`` (blocks separated by blank lines)."""
    found: dict[str, UnitState] = {}
    for block in show_output.strip().split("\n\n"):
        fields = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if fields.get("Id") and fields.get("NRestarts", "").isdigit():
            found[fields["Id"]] = UnitState(fields.get("ActiveState", ""), int(fields["NRestarts"]),
                                            fields.get("Type", ""))
    return found


def unit_states() -> dict[str, UnitState]:
    """The kit's services as systemd sees them now ({} when systemctl cannot say)."""
    try:
        listed = subprocess.run(
            ["systemctl", "list-units", "fieldkit-*.service", "--all", "--plain", "--no-legend"],
            capture_output=True, text=True, timeout=30,
        ).stdout
        units = [line.split()[0] for line in listed.splitlines() if line.strip()]
        if not units:
            return {}
        shown = subprocess.run(["systemctl", "show", "-p", "Id", "-p", "ActiveState", "-p", "NRestarts", "-p", "Type", *units],
                               capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return parse_unit_states(shown)


def running_units() -> list[str]:
    """The kit's services running before the switch: each must run again on the new release (one-shot
    units, the boot and setup-slip steps, come and go)."""
    return sorted(u for u, st in unit_states().items() if st.active == "active" and st.kind != "oneshot")


def _last_journal_line(unit: str) -> str:
    try:
        return subprocess.run(["journalctl", "-u", unit, "-n", "1", "-o", "cat", "--no-pager"],
                              capture_output=True, text=True, timeout=30).stdout.strip()[:200]
    except (OSError, subprocess.SubprocessError):
        return ""


def units_verdict(before: list[str], baseline: dict[str, UnitState], now: dict[str, UnitState],
                  settled: bool) -> str | None:
    """Why the trial can stop early, or None: a unit of the new release keeps failing, or (once
    ``settled``) one that ran before the switch is not running (failed, or skipped by its
    ExecCondition= because the new release's `fieldkit run --check` itself fails)."""
    for unit, st in sorted(now.items()):
        restarts = st.restarts - (baseline[unit].restarts if unit in baseline else 0)
        if restarts >= CRASH_LOOP_RESTARTS:
            last = _last_journal_line(unit)
            return f"{unit} failed {restarts} times in a row" + (f" ({last})" if last else "")
    if settled:
        for unit in before:
            st = now.get(unit)
            if st is not None and st.active in ("inactive", "failed"):
                last = _last_journal_line(unit)
                return f"{unit} ran before the update and does not run now ({st.active})" + (
                    f": {last}" if last else "")
    return None


def run_trial(
    config, slot: Path, deadline: float, mode: str, alive=lambda: True, expected: list[str] | None = None,
    units_before: list[str] | None = None,
) -> str | None:
    """None when the release proved itself before ``deadline``; else why not, in a lead's words.

    ``expected``: the services that ran before the switch (`fieldkit up --only` runs a few); all of them
    when not known. ``units_before``: under systemd, the kit's units that were running before it."""
    if mode == "none":  # nothing runs here: the doctor alone decides
        fails = doctor_failures(config, slot)
        return None if not fails else "fieldkit doctor failed: " + "; ".join(fails)
    watch = StatusWatch(config)
    last = "the new release's services did not become healthy (none of them reported in)"
    # Under systemd a release whose services cannot start is known within seconds (they crash-loop):
    # go back then, not at the end of the whole bound.
    baseline = unit_states() if mode == "systemd" else {}
    began = next_unit_check = time.monotonic()
    try:
        while time.time() < deadline:
            if not alive():
                return "the kit's supervisor stopped while starting the new release"
            if baseline and time.monotonic() >= next_unit_check:
                next_unit_check = time.monotonic() + UNIT_CHECK_SECONDS
                verdict = units_verdict(units_before or [], baseline, unit_states(),
                                        settled=time.monotonic() - began >= UNIT_GRACE_SECONDS)
                if verdict:
                    log.warning("event=update_trial_unit_failed reason=%r", verdict)
                    return verdict
            status = watch.status()
            if status and runs_from(status.get("start_id"), slot):
                services = status.get("services") or {}
                wanted = expected or list(services)
                bad = sorted(n for n in wanted if services.get(n) != "ok")
                if not bad and status.get("state") in ("online", "degraded"):
                    fails = doctor_failures(config, slot)
                    if not fails:
                        return None
                    last = "fieldkit doctor failed: " + "; ".join(fails)
                else:
                    last = f"these services did not become healthy: {', '.join(bad) or 'web'}"
            time.sleep(1.0)
    finally:
        watch.close()
    return f"{last} within {int(config['update.trial_seconds'])} s"
