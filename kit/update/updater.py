"""`fieldkit update apply`: one update from a bundle file to "kept" or "rolled back" (see apply.py)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from kit.startid import is_running, start_id
from kit.update import hold, slots
from kit.update.apply import (
    UpdateRefused,
    check_bundle,
    detect_mode,
    finish_keep,
    finish_rollback,
    give_back,
    installed_version,
    journal_path,
    read_journal,
    record_outcome,
    recover,
    systemctl,
    take_snapshot,
    units_install,
    updates_dir,
    write_journal,
)
from kit.update.bundle import BundleError, extract
from kit.update.busy import busy_reason
from kit.update.trial import restart_supervisor, run_trial, running_services, running_units, supervisor_pid

log = logging.getLogger("fieldkit.update")


def kit_busy(config) -> str | None:
    if not config.db_path.exists():
        return None
    import sqlite3

    conn = sqlite3.connect(f"file:{config.db_path}?mode=ro", uri=True, timeout=10)
    try:
        return busy_reason(conn, config)
    finally:
        conn.close()


def apply_update(config, path: Path, keys: list[bytes], *, even_if_busy: bool = False, say=print) -> dict:
    """Apply the bundle at ``path``; returns the outcome. Raises UpdateRefused/BundleError before any change."""
    path = Path(path)
    if read_journal(config) is not None:
        if recover(config):
            restart_supervisor(config)
        if read_journal(config) is not None:
            raise UpdateRefused("another update is in progress on this kit; wait for it to finish")
    manifest = check_bundle(config, path, keys)
    if not even_if_busy and (why := kit_busy(config)):
        raise UpdateRefused(f'not now: {why}; a lead can choose "Update now" on the dashboard')
    mode = detect_mode(config)
    old = slots.current_slot(config)
    new = slots.releases_dir(config) / manifest.version
    if old is not None and new == old:
        raise UpdateRefused(f"release {manifest.version} is the one running")
    j = {
        "id": uuid.uuid4().hex[:12],
        "updater": start_id(),
        "started": time.time(),
        "mode": mode,
        "from_version": installed_version(config),
        "from_slot": str(old) if old else None,
        "to_version": manifest.version,
        "to_slot": str(new),
        "bundle": str(path),
    }
    say(
        f"Updating {j['from_version']} → {manifest.version} ({mode}); verified, signed by key {manifest.key_id}"
    )
    updates_dir(config).mkdir(parents=True, exist_ok=True)
    write_journal(config, j, "installing")
    unpack = updates_dir(config) / f"unpack-{j['id']}"
    try:
        extract(path, manifest, unpack)
        slots.create_slot(
            new, unpack / "wheels", manifest.version, inherit=not manifest.dependencies_included, log_to=say
        )
        for kind in (
            "systemd",
            "installer",
        ):  # kept with the slot: units go in at the switch, back on rollback
            if (unpack / kind).is_dir():
                shutil.copytree(unpack / kind, new / "share" / "fieldkit" / kind, dirs_exist_ok=True)
    except (BundleError, RuntimeError, OSError, subprocess.SubprocessError) as e:
        shutil.rmtree(new, ignore_errors=True)
        reason = f"could not install {manifest.version}: {e}"
        if isinstance(e, OSError) and e.errno == 28:
            reason = f"could not install {manifest.version}: the data partition is full"
        record_outcome(config, j, "rolled_back", reason)
        journal_path(config).unlink(missing_ok=True)
        raise UpdateRefused(reason) from None
    finally:
        shutil.rmtree(unpack, ignore_errors=True)
    write_journal(config, j, "installed")
    hold.set_hold(config.data_dir, config.db_path, manifest.version)
    write_journal(config, j, "held")
    say(
        'Sales and admissions wait while the new release is tried (screens say "Updating — back in a minute")'
    )
    if config.db_path.exists():
        take_snapshot(config)
    write_journal(config, j, "snapshot")
    write_journal(config, j, "switching")
    sup = supervisor_pid(config)
    expected = running_services(config) if mode != "none" else []
    units_before = running_units() if mode == "systemd" else []
    switch_and_start(config, j, new)
    deadline = time.time() + config["update.trial_seconds"]
    write_journal(config, j, "trial", trial_deadline=deadline)
    say(
        f"Trying {manifest.version}: every service healthy and `fieldkit doctor` without FAIL, "
        f"within {config['update.trial_seconds']} s"
    )

    def alive() -> bool:  # the supervisor keeps its pid across the re-exec; the journal stays ours
        now = read_journal(config)
        return (now is not None and now.get("updater") == j["updater"]) and (mode != "up" or pid_alive(sup))

    reason = run_trial(config, new, deadline, mode, alive, expected, units_before)
    taken = read_journal(config)
    if (
        taken is None or taken.get("updater") != j["updater"]
    ):  # the kit went back by itself (it did not start)
        wait_gone(config, 180)
        from kit.update.apply import last_outcome

        done = last_outcome(config) or {}
        say(f"Went back to {j['from_version']}: {done.get('reason') or reason}")
        return {
            "outcome": "rolled_back",
            "from_version": j["from_version"],
            "to_version": manifest.version,
            "reason": done.get("reason") or reason,
        }
    if reason is None:
        write_journal(config, j, "keeping")
        finish_keep(config, j)
        say(f"Kept: the kit runs {manifest.version}")
        return {"outcome": "applied", "from_version": j["from_version"], "to_version": manifest.version}
    say(f"Going back to {j['from_version']}: {reason}")
    roll_back(config, j, reason)
    return {
        "outcome": "rolled_back",
        "from_version": j["from_version"],
        "to_version": manifest.version,
        "reason": reason,
    }


def pid_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_gone(config, seconds: float) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline and journal_path(config).exists():
        time.sleep(0.5)


def switch_and_start(config, j: dict, new: Path) -> None:
    mode = j["mode"]
    if mode == "systemd":
        systemctl("stop", "fieldkit.target")
    slots.switch_current(config, new)
    if mode == "up":
        restart_supervisor(config)  # it re-executes from `current`; its prepare runs the migrations
        return
    migrate = subprocess.run(
        [str(new / "bin" / "python"), "-m", "kit", "db", "migrate"],
        capture_output=True,
        text=True,
        timeout=600,
        env=slots.clean_env(),
        cwd=str(config.data_dir),
    )
    if migrate.returncode != 0:
        log.error("event=update_migrate_failed stderr=%r", migrate.stderr[-400:])
    give_back(config)  # what root made in the data dir (the migration, the snapshot) before the services start
    if mode == "systemd":
        units_install(config, j, new)
        systemctl("start", "fieldkit.target")


def roll_back(config, j: dict, reason: str) -> None:
    """Back to the old slot with the snapshot; under `fieldkit up` its restart finishes it (nothing holds the db)."""
    write_journal(config, j, "rollback", reason=reason)
    mode = j["mode"]
    sup = supervisor_pid(config)
    if mode == "up" and sup is not None:
        old = j.get("from_slot")
        if old:
            slots.switch_current(config, Path(old))
        else:
            slots.current_link(config).unlink(missing_ok=True)
        j["updater"] = None  # the restarted kit's prepare step may finish it now
        write_journal(config, j, "rollback")
        restart_supervisor(config)
        deadline = time.time() + 180
        while time.time() < deadline and journal_path(config).exists() and pid_alive(sup):
            time.sleep(0.5)
        if not journal_path(config).exists():
            return
    if mode == "systemd":
        systemctl("stop", "fieldkit.target")
    finish_rollback(config, j)
    if mode == "systemd":
        systemctl("start", "fieldkit.target")


def manual_rollback(config, say=print) -> dict:
    """`fieldkit update rollback`: end a trial now, or go back to the newest other slot after a kept update."""
    j = read_journal(config)
    if j is not None:
        if is_running(j.get("updater")):
            raise UpdateRefused(
                "an update is being tried right now; it goes back by itself if it fails "
                "(or stop its `fieldkit update apply`)"
            )
        if recover(config):
            restart_supervisor(config)
        say("An interrupted update was finished: the kit is back on its previous release")
        return {"outcome": "rolled_back", "reason": "interrupted update finished"}
    current = slots.current_slot(config)
    others = [(v, p) for v, p in slots.list_slots(config) if p != current]
    if not others:
        raise UpdateRefused("there is no earlier release on this kit to go back to")
    from kit.update.bundle import parse_version

    version, slot = max(others, key=lambda vp: parse_version(vp[0]))
    j = {
        "id": uuid.uuid4().hex[:12],
        "updater": start_id(),
        "mode": detect_mode(config),
        "from_version": installed_version(config),
        "from_slot": str(current) if current else None,
        "to_version": version,
        "to_slot": str(slot),
    }
    if j["mode"] == "systemd":
        systemctl("stop", "fieldkit.target")
    slots.switch_current(config, slot)
    if j["mode"] == "up":
        restart_supervisor(config)
    elif j["mode"] == "systemd":
        systemctl("start", "fieldkit.target")
    record_outcome(config, j, "rolled_back", f"a lead went back from {j['from_version']} to {version}")
    say(f"Now on {version} (was {j['from_version']}); data kept as it is")
    return {"outcome": "rolled_back", "from_version": j["from_version"], "to_version": version}
