"""The update hold: while a new release is on trial no event enters the ledger.

A rollback restores the database snapshot taken when the hold began, so anything recorded during the
trial would be lost and its seq reused by the next event (the hub or HQ may already hold it). The hold
is a file beside the database (``updates/hold.json``); ``Ledger.append`` refuses while it exists, with
``UpdateInProgress`` (a ``sqlite3.OperationalError``, so every writer's "the database would not take
it" path — a busy database — handles it: the door and merch pages say "Updating — back in a minute").
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

from kit.files import write_durably

HOLD_FILE = "hold.json"
MESSAGE = "Updating — back in a minute: nothing was recorded, try again shortly"


class UpdateInProgress(sqlite3.OperationalError):
    """The kit is trying a new release; sales and admissions wait until it is kept or rolled back."""


def hold_path(data_dir: Path) -> Path:
    return Path(data_dir) / "updates" / HOLD_FILE


def read_hold(data_dir: Path) -> dict | None:
    try:
        return json.loads(hold_path(data_dir).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"version": "?", "since": 0}


def set_hold(data_dir: Path, db_path: Path, version: str) -> None:
    """Start the hold, then wait out any write transaction that began before it (the snapshot comes next)."""
    write_durably(hold_path(data_dir), json.dumps({"version": version, "since": time.time()}), mode=0o644)
    if Path(db_path).exists():
        conn = sqlite3.connect(db_path, timeout=30, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("COMMIT")
        finally:
            conn.close()


def clear_hold(data_dir: Path) -> None:
    hold_path(data_dir).unlink(missing_ok=True)


def refuse_if_held(conn: sqlite3.Connection) -> None:
    """Called by ``Ledger.append`` inside its transaction."""
    row = conn.execute("PRAGMA database_list").fetchone()
    path = row[2] if row else ""
    if path and os.path.exists(os.path.join(os.path.dirname(path), "updates", HOLD_FILE)):
        raise UpdateInProgress(MESSAGE)
