"""Applying a release: verify → install a slot → hold + snapshot → switch → migrate → trial → keep or go back.

Every step is written to ``updates/journal.json`` (durably) before it is taken, with the updater's start
id. A kit that starts (``fieldkit up``'s prepare, the appliance's boot unit) with a journal whose updater
is gone calls ``recover``: before the switch it cleans up; from the hold on it switches back to the old
slot and restores the snapshot. So a power cut or a kill at any step ends on a working release.

Under ``fieldkit up`` the supervisor is told (SIGHUP) to re-execute itself from ``current``; its prepare
step runs the new release's migrations, or finishes a rollback (restores the snapshot) before any
service opens the database. On the appliance the units run ``releases/current/bin/fieldkit``; the
updater (root, fieldkit-update.service) stops and starts ``fieldkit.target`` around the switch.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

from kit.files import write_durably
from kit.startid import is_running
from kit.update import hold, slots
from kit.update.bundle import BundleError, Manifest, parse_version, verify
from kit.update.trial import supervisor_pid

log = logging.getLogger("fieldkit.update")
APPLIED, ROLLED_BACK = "update.applied", "update.rolled_back"
BEFORE_SWITCH = ("installing", "installed")
AFTER_HOLD = ("held", "snapshot", "switching", "trial")


class UpdateRefused(BundleError):
    """This kit will not take the bundle (or cannot now); the message says why."""


def updates_dir(config) -> Path:
    return config.data_dir / "updates"


def journal_path(config) -> Path:
    return updates_dir(config) / "journal.json"


def read_journal(config) -> dict | None:
    try:
        return json.loads(journal_path(config).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"id": "unknown", "step": "rollback", "reason": "the update journal was damaged"}


def write_journal(config, j: dict, step: str, **more) -> None:
    j.update(step=step, **more)
    write_durably(journal_path(config), json.dumps(j), mode=0o640)
    log.info("event=update_step id=%s step=%s to=%s", j["id"], step, j.get("to_version"))


def machine_arch() -> str:
    m = platform.machine().lower()
    return {"arm64": "aarch64", "amd64": "x86_64"}.get(m, m)


def installed_version(config) -> str:
    return slots.slot_version(slots.current_slot(config)) or slots.running_version()


def detect_mode(config) -> str:
    if supervisor_pid(config) is not None:
        return "up"
    if config.paths.home is None and Path("/run/systemd/system").exists():
        return "systemd"
    return "none"


def check_bundle(config, path: Path, keys: list[bytes]) -> Manifest:
    """Everything that makes this kit refuse a bundle, before anything is touched."""
    manifest = verify(path, keys)
    arch = machine_arch()
    if manifest.arch != arch:
        raise UpdateRefused(f"it is for {manifest.arch} kits; this kit is {arch}")
    running = installed_version(config)
    if parse_version(manifest.version) <= parse_version(running):
        raise UpdateRefused(f"it is version {manifest.version}, not newer than the running {running}")
    if parse_version(running) < parse_version(manifest.min_from_version):
        raise UpdateRefused(
            f"it updates kits running {manifest.min_from_version} or newer; this kit runs {running}"
            f" (install the releases in between first)"
        )
    need = 3 * path.stat().st_size // (1 << 20) + config["update.min_free_mb"]
    if config.db_path.exists():
        need += config.db_path.stat().st_size // (1 << 20)
    free = shutil.disk_usage(config.data_dir).free // (1 << 20)
    if free < need:
        raise UpdateRefused(
            f"the data partition is too full: installing needs {need} MB free, it has {free} MB"
        )
    return manifest


# --- the database snapshot ---------------------------------------------------------------------------
def snapshot_path(config) -> Path:
    return updates_dir(config) / "snapshot.db"


def take_snapshot(config) -> None:
    """A consistent copy (SQLite's backup API) beside the database, complete or absent."""
    target = snapshot_path(config)
    tmp = target.with_name("snapshot.db.tmp")
    tmp.unlink(missing_ok=True)
    src, dst = sqlite3.connect(config.db_path, timeout=30), sqlite3.connect(tmp)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)


def restore_snapshot(config) -> None:
    """Put the snapshot back into kit.db (through SQLite, so its WAL is dealt with); nothing may hold it."""
    from kit.db import DatabaseLock

    snap = snapshot_path(config)
    if not snap.exists():
        return
    lock = DatabaseLock(config.db_path)
    lock.exclusive(wait_seconds=30)
    try:
        src, dst = sqlite3.connect(snap), sqlite3.connect(config.db_path, timeout=30)
        try:
            dst.execute("PRAGMA synchronous=FULL")
            src.backup(dst)
            dst.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            dst.close()
            src.close()
    finally:
        lock.release()
    log.info("event=update_snapshot_restored db=%s", config.db_path)


# --- the outcome -----------------------------------------------------------------------------------
def record_outcome(config, j: dict, outcome: str, reason: str = "") -> None:
    """The ledger event (once per update id) and a line of history for `fieldkit update status`."""
    from kit.clock import KitClock
    from kit.db import Database
    from kit.event_codec import unpack
    from kit.ledger import Ledger

    type_ = APPLIED if outcome == "applied" else ROLLED_BACK
    payload = {
        "update_id": j["id"],
        "outcome": outcome,
        "from_version": j.get("from_version"),
        "to_version": j.get("to_version"),
        "reason": reason[:500],
        "mode": j.get("mode", ""),
    }
    if config.db_path.exists():
        db = Database(config.db_path, config["db.busy_timeout_ms"])
        try:
            with db.transaction() as conn:
                rows = conn.execute("SELECT payload FROM events WHERE type IN (?, ?)", (APPLIED, ROLLED_BACK))
                seen = any(
                    json.loads(unpack(r[0])).get("update_id") == j["id"] for r in rows
                )  # payloads are packed
                if not seen:
                    clock = KitClock(config.data_dir, config["kit.clock_assume_synced"], "offset")
                    Ledger(config.kit_id, clock, config["site.max_clock_ahead_seconds"]).append(
                        conn, type_, payload
                    )
        except sqlite3.Error as e:  # the outcome still goes to the history file
            log.error("event=update_outcome_not_recorded id=%s error=%s", j["id"], e)
        finally:
            db.close()
    history = updates_dir(config) / "history.jsonl"
    with history.open("a") as f:
        f.write(json.dumps({**payload, "at": time.time()}) + "\n")
    log.info(
        "event=update_%s id=%s from=%s to=%s reason=%r",
        outcome,
        j["id"],
        j.get("from_version"),
        j.get("to_version"),
        reason,
    )


def last_outcome(config) -> dict | None:
    try:
        lines = (updates_dir(config) / "history.jsonl").read_text().splitlines()
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None


def _slot_path(value) -> Path | None:
    return Path(value) if value else None


def finish_rollback(config, j: dict) -> None:
    """Old slot, snapshot back, hold off, outcome recorded. Idempotent (recovery may run it twice)."""
    old = _slot_path(j.get("from_slot"))
    if old is not None:
        slots.switch_current(config, old)
    else:
        slots.current_link(config).unlink(missing_ok=True)  # back to the install that ran before slots
    restore_snapshot(config)  # present only once complete (taken under the hold, renamed into place)
    units_restore(config, j)
    hold.clear_hold(config.data_dir)
    record_outcome(config, j, "rolled_back", j.get("reason") or "the update was interrupted")
    new = _slot_path(j.get("to_slot"))
    if new is not None and new != old and new.exists():
        discard_slot(config, new)
    snapshot_path(config).unlink(missing_ok=True)
    journal_path(config).unlink(missing_ok=True)
    give_back(config)


def _running_from(slot: Path) -> bool:
    import sys

    return os.path.realpath(sys.prefix) == os.path.realpath(slot)


def discard_slot(config, slot: Path) -> None:
    """Remove a failed release; the process running from it (a kit going back) leaves it to the next start."""
    discard = updates_dir(config) / "discard.json"
    if _running_from(slot):
        write_durably(discard, json.dumps([str(slot)]), mode=0o640)
        return
    shutil.rmtree(slot, ignore_errors=True)


def remove_discarded(config) -> None:
    discard = updates_dir(config) / "discard.json"
    try:
        paths = json.loads(discard.read_text())
    except (OSError, ValueError):
        return
    current = slots.current_slot(config)
    for p in paths if isinstance(paths, list) else []:
        slot = Path(str(p))
        if slot.parent == slots.releases_dir(config) and slot != current and not _running_from(slot):
            shutil.rmtree(slot, ignore_errors=True)
    discard.unlink(missing_ok=True)


def finish_keep(config, j: dict) -> None:
    hold.clear_hold(config.data_dir)
    record_outcome(config, j, "applied")
    snapshot_path(config).unlink(missing_ok=True)
    journal_path(config).unlink(missing_ok=True)
    give_back(config)
    prune_slots(config, keep=config["update.keep_releases"])


def prune_slots(config, keep: int) -> None:
    current = slots.current_slot(config)
    others = [
        p
        for _v, p in sorted(slots.list_slots(config), key=lambda vp: parse_version(vp[0]), reverse=True)
        if p != current
    ]
    for p in others[max(0, keep - 1) :]:
        shutil.rmtree(p, ignore_errors=True)


def recover(config) -> bool:
    """Finish what an interrupted update left; True when ``current`` changed (the caller restarts from it)."""
    j = read_journal(config)
    if j is None:
        remove_discarded(config)
        return False
    if is_running(j.get("updater")):
        return False
    before = slots.current_slot(config)
    step = j.get("step")
    log.warning("event=update_recovering id=%s step=%s", j.get("id"), step)
    if step in BEFORE_SWITCH:
        if step == "installing" and j.get("to_slot"):
            stopped = slots.stop_processes_in(Path(j["to_slot"]))
            if stopped:
                log.warning("event=update_builders_killed count=%d slot=%s", stopped, j["to_slot"])
            shutil.rmtree(j["to_slot"], ignore_errors=True)
        shutil.rmtree(updates_dir(config) / f"unpack-{j['id']}", ignore_errors=True)
        hold.clear_hold(config.data_dir)
        record_outcome(
            config, j, "rolled_back", "the update was interrupted while installing; nothing changed"
        )
        journal_path(config).unlink(missing_ok=True)
    elif step == "keeping":
        finish_keep(config, j)
    else:
        if step in AFTER_HOLD or not j.get("reason"):
            j["reason"] = f"the update was interrupted ({step}); the kit went back to {j.get('from_version')}"
        finish_rollback(config, j)
    return slots.current_slot(config) != before


def ensure_current(config) -> bool:
    """On the appliance, ``current`` must name a release that runs: else the image's own (this one)."""
    import sys

    if config.paths.home is not None:
        return False  # development: no link means the environment `fieldkit up` was started from
    slot = slots.current_slot(config)
    if slot is not None and (slot / "bin" / "fieldkit").exists():
        return False
    slots.switch_current(config, Path(sys.prefix))
    log.warning("event=update_current_reset target=%s", sys.prefix)
    return True


def give_back(config) -> None:
    """Run as root (the appliance's updater), files it made in the data dir go to the data dir's owner."""
    if os.geteuid() != 0:
        return
    st = config.data_dir.stat()
    paths = [
        config.db_path,
        Path(f"{config.db_path}-wal"),
        Path(f"{config.db_path}-shm"),
        updates_dir(config),
    ]
    paths += list(updates_dir(config).glob("*")) if updates_dir(config).is_dir() else []
    for p in paths:
        try:
            os.chown(p, st.st_uid, st.st_gid)
        except OSError:
            continue


# --- systemd (the appliance) -----------------------------------------------------------------------
UNIT_DIR = Path("/etc/systemd/system")


def systemctl(*args: str) -> None:
    subprocess.run(["systemctl", *args], check=False, timeout=300)


def units_install(config, j: dict, slot: Path) -> None:
    """The bundle's unit files into /etc/systemd/system, the ones they replace kept for a rollback."""
    shipped = slot / "share" / "fieldkit" / "systemd"
    if j.get("mode") != "systemd" or not shipped.is_dir():
        return
    backup = updates_dir(config) / f"units-{j['id']}"
    backup.mkdir(parents=True, exist_ok=True)
    for unit in shipped.iterdir():
        old = UNIT_DIR / unit.name
        if old.exists() and not (backup / unit.name).exists():
            shutil.copy2(old, backup / unit.name)
        shutil.copy2(unit, old)
    systemctl("daemon-reload")


def units_restore(config, j: dict) -> None:
    backup = updates_dir(config) / f"units-{j.get('id')}"
    if not backup.is_dir():
        return
    for unit in backup.iterdir():
        shutil.copy2(unit, UNIT_DIR / unit.name)
    shutil.rmtree(backup, ignore_errors=True)
    systemctl("daemon-reload")
