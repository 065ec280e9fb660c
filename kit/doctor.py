"""``fieldkit doctor``: checks the core and every feature contribute; OK / WARN / FAIL with a fix."""

from __future__ import annotations

import importlib.util
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass

import click

from kit.config import Config, ConfigError, load_config

LEVELS = ("OK", "WARN", "FAIL")


@dataclass
class Check:
    name: str
    level: str  # OK, WARN or FAIL
    message: str
    fix: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def ok(name: str, message: str) -> Check:
    return Check(name, "OK", message)


def warn(name: str, message: str, fix: str) -> Check:
    return Check(name, "WARN", message, fix)


def fail(name: str, message: str, fix: str) -> Check:
    return Check(name, "FAIL", message, fix)


def python_module_check(name: str, module: str, needed_for: str, fix: str) -> Check:
    """A Pi-only library (picamera2, lgpio, evdev) that is missing is a WARN, never an import error."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if found:
        return ok(name, f"{module} is installed")
    return warn(name, f"{module} is not installed: {needed_for} is unavailable", fix)


def check_data_dir(config: Config) -> list[Check]:
    data = config.data_dir
    if not data.exists():
        return [fail("data dir", f"{data} does not exist", "run `fieldkit init`")]
    try:
        probe = data / ".doctor-probe"
        probe.write_text("x")
        probe.unlink()
    except OSError as e:
        return [fail("data dir", f"{data} is not writable ({e.strerror})", f"chown -R fieldkit {data}")]
    return [ok("data dir", f"{data} is writable")]


def check_disk(config: Config) -> list[Check]:
    target = config.data_dir if config.data_dir.exists() else config.data_dir.parent
    try:
        free_mb = shutil.disk_usage(target).free // (1024 * 1024)
    except OSError as e:
        return [fail("free disk", f"cannot read free space of {target}: {e.strerror}", "check the data partition is mounted")]
    need = config["doctor.min_free_mb"]
    if free_mb < need:
        return [fail("free disk", f"{free_mb} MB free on the data partition (need {need})",
                     "delete old exports under the data dir or use a larger SD card")]
    if free_mb < need * 3:
        return [warn("free disk", f"{free_mb} MB free on the data partition", "free some space before the event")]
    return [ok("free disk", f"{free_mb} MB free")]


def check_database(config: Config) -> list[Check]:
    from kit.db import pending_migrations
    from kit.features import all_migration_sets
    from kit.service import open_database

    if not config.db_path.exists():
        return [fail("database", f"{config.db_path} does not exist", "run `fieldkit init`")]
    try:
        db = open_database(config)
        result = db.scalar("PRAGMA quick_check")
        pending = pending_migrations(db, all_migration_sets())
        with db.transaction() as conn:  # proves it is writable (and takes the write lock briefly)
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS doctor_probe (x)")
        db.close()
    except sqlite3.Error as e:
        return [fail("database", f"{config.db_path}: {e}", "stop the services and restore the data dir from backup")]
    if result != "ok":
        return [fail("database", f"integrity check says: {result}", "stop the services; `fieldkit ledger verify`")]
    if pending:
        return [warn("database", f"{len(pending)} migration(s) pending", "run `fieldkit db migrate` (services stopped)")]
    return [ok("database", "writable, integrity ok, migrations applied")]


def check_broker(config: Config) -> list[Check]:
    from kit.testing import port_open

    host, port = config["mqtt.host"], config["mqtt.port"]
    if port_open(host, port, timeout=1.0):
        return [ok("broker", f"MQTT broker answers at {host}:{port}")]
    return [fail("broker", f"no MQTT broker at {host}:{port}",
                 "start it: systemctl start mosquitto (appliance) or `fieldkit up` (starts a private one)")]


def check_clock(config: Config) -> list[Check]:
    from kit.clock import KitClock

    status = KitClock(config.data_dir, config["kit.clock_assume_synced"], config["kit.clock_method"]).status()
    if not status.plausible:
        return [fail("clock", f"the clock reads {status.as_dict()['now']}, which cannot be right",
                     "set it from a phone on the dashboard (Clock) or connect to a network with NTP")]
    if not status.synced:
        return [warn("clock", status.reason, "on the dashboard, tap 'Set the kit's clock from this phone'")]
    return [ok("clock", status.reason)]


def check_status_led(config: Config) -> list[Check]:
    from drivers.status_led import doctor_check

    return [doctor_check(config)]


def check_kiosk(config: Config) -> list[Check]:
    from kit.appliance.kiosk import doctor_check

    return doctor_check(config)


CORE_CHECKS: list[Callable[[Config], list[Check]]] = [
    check_data_dir, check_disk, check_database, check_broker, check_clock, check_status_led, check_kiosk,
]


def run_checks(config: Config | None = None) -> list[Check]:
    try:
        config = config or load_config()
    except ConfigError as e:
        return [fail("config", str(e), "fix or move away the file named above")]
    from kit.features import load_features

    checks = [ok("config", f"settings loaded for kit '{config.kit_id}'")]
    for fn in CORE_CHECKS + [c for f in load_features() for c in f.doctor_checks]:
        try:
            checks.extend(fn(config))
        except Exception as e:  # a broken check must not hide the others
            checks.append(fail(getattr(fn, "__name__", "check"), f"the check itself failed: {e!r}", "report this bug"))
    return checks


def print_checks(checks: list[Check]) -> None:
    colours = {"OK": "green", "WARN": "yellow", "FAIL": "red"}
    width = max(len(c.name) for c in checks)
    for c in checks:
        click.echo(click.style(f"{c.level:<4}", fg=colours[c.level], bold=True) + f" {c.name:<{width}}  {c.message}")
        if c.fix:
            click.echo(f"     {'':<{width}}  fix: {c.fix}")
    counts = {level: sum(c.level == level for c in checks) for level in LEVELS}
    click.echo(f"\n{counts['OK']} ok, {counts['WARN']} warnings, {counts['FAIL']} failures")
