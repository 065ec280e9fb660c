"""The ledger's hold (``kit_ledger_hold``): a spare kit that may record nothing until it is restored.

A spare flashed with a dead kit's id must never start a second chain of that id: it is held until
``fieldkit restore`` fills its ledger (a standing hold), or, at a site with a hub, until the mirror has
answered whether the hub already holds this kit (a provisional hold that lapses by itself).
``Ledger.append`` refuses while a hold stands.
"""

from __future__ import annotations

import logging
import sqlite3
import time

log = logging.getLogger("fieldkit.ledger")


class LedgerHeld(RuntimeError):
    """The ledger is held (``kit_ledger_hold``): nothing is recorded until the kit is restored."""


def hold_reason(conn: sqlite3.Connection) -> str | None:
    """Why this kit may not record anything now (a spare waiting for its restore), or None."""
    try:
        row = conn.execute("SELECT reason, until FROM kit_ledger_hold WHERE id = 1").fetchone()
    except sqlite3.OperationalError:  # a database older than the table (or than its ``until``)
        try:
            row = conn.execute("SELECT reason, NULL FROM kit_ledger_hold WHERE id = 1").fetchone()
        except sqlite3.OperationalError:
            return None
    if row is None or (row[1] is not None and time.time() >= row[1]):  # a provisional hold lapses by itself
        return None
    return row[0]


def set_hold(conn: sqlite3.Connection, reason: str, at: float) -> None:
    """Hold the ledger until released (a spare waiting for its restore)."""
    conn.execute("INSERT INTO kit_ledger_hold (id, reason, set_at, until) VALUES (1, ?, ?, NULL) ON CONFLICT(id)"
                 " DO UPDATE SET reason = excluded.reason, until = NULL", (reason, at))


def hold_provisionally(conn: sqlite3.Connection, reason: str, at: float, until: float) -> bool:
    """Hold an empty ledger until ``until`` at the latest (never over a standing hold); True when set."""
    if (conn.execute("SELECT 1 FROM events LIMIT 1").fetchone()
            or conn.execute("SELECT 1 FROM kit_ledger_checkpoint").fetchone()
            or conn.execute("SELECT 1 FROM kit_ledger_hold").fetchone()):
        return False
    conn.execute("INSERT INTO kit_ledger_hold (id, reason, set_at, until) VALUES (1, ?, ?, ?)", (reason, at, until))
    return True


MIRROR_WAIT_SECONDS = 30.0


def hold_until_the_mirror_answers(config, conn: sqlite3.Connection) -> bool:
    """Before a kit's services start: a kit with an empty ledger at a site with a hub (``site.hub_address``)
    records nothing until the mirror sender has heard whether the hub already mirrors this kit's id (a
    spare flashed with a dead kit's id), MIRROR_WAIT_SECONDS at most when the hub does not answer.
    Without it a sale rung up in the first second could start a second chain of that id."""
    if config["site.hub"] or not config["site.hub_address"] or not config["site.mirror"]:
        return False
    now = time.time()
    held = hold_provisionally(conn, f"checking with the site's hub whether it already holds kit {config.kit_id} "
                                    f"(at most {MIRROR_WAIT_SECONDS:.0f} s)", now, now + MIRROR_WAIT_SECONDS)
    if held:
        log.info("event=ledger_held_provisionally kit=%s seconds=%.0f", config.kit_id, MIRROR_WAIT_SECONDS)
    return held


def release_provisional_hold(conn: sqlite3.Connection) -> bool:
    """End a provisional hold (the site's mirror answered and holds nothing of this kit); True if one ended."""
    return conn.execute("DELETE FROM kit_ledger_hold WHERE until IS NOT NULL").rowcount > 0


def release_hold(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM kit_ledger_hold")
