"""``fieldkit doctor`` checks of the door: something to check tickets against, and not stuck in rehearsal."""

from __future__ import annotations

import sqlite3

from kit.config import ConfigError
from kit.doctor import Check, fail, ok, warn


def check_door(config) -> list[Check]:
    from kit.service import open_database

    if not config.db_path.exists():
        return []
    db = open_database(config)
    try:
        keys = db.scalar("SELECT COUNT(*) FROM checkin_keys WHERE kind != 'rehearsal'")
        tickets = db.scalar("SELECT COUNT(*) FROM checkin_tickets WHERE source != 'rehearsal'")
        rehearsal = db.scalar("SELECT rehearsal FROM checkin_door_state WHERE id = 1")
    except sqlite3.OperationalError:
        return [warn("tickets", "the checkin tables are missing", "run `fieldkit db migrate`")]
    finally:
        db.close()
    checks = []
    try:
        from checkin.validate import DoorRules

        DoorRules.from_config(config)
    except ConfigError as e:
        checks.append(fail("door rules", str(e), "fix checkin.entry_windows in fieldkit.toml"))
    if not keys and not tickets:
        checks.append(warn("tickets", "no ticket keys and no attendee list: every ticket will be refused",
                           "fieldkit tickets import attendees.csv, or fieldkit tickets keys add --pretix event.json"))
    else:
        checks.append(ok("tickets", f"{tickets} tickets on the list, {keys} signing key(s)"))
    if rehearsal:
        checks.append(warn("door mode", "the door is in rehearsal: scans do not count",
                           "switch it off on the door page or with `fieldkit checkin rehearsal off`"))
    return checks


def check_scan_devices(config) -> list[Check]:
    from drivers.scanner import doctor_checks

    return doctor_checks(config)
