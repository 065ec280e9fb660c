"""Attendee privacy: what personal data the kit holds, and erasing it once HQ holds it.

After ``kit.event_ends`` + ``privacy.erase_after_hours``, and only once HQ has acknowledged every event
and every personal record of the kit (or at once, when a lead forces it), each feature erases its own
personal data through the ``erase_personal_data`` hook of its registration; the core erases its own
(personal records, raw copies of documents the features name, database snapshots), writes the erasure
to the ledger (what and how many, never the data), truncates the ledger up to the erasure (old
payloads may carry names) once HQ holds those events, and makes the bytes go from the files:
secure_delete while deleting, then a WAL checkpoint, VACUUM and another checkpoint.

The core never imports a feature: callers hand in the hooks (``hooks_from(load_features())``).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from kit import ledger as ledger_mod
from kit import personal
from kit.config import Config
from kit.db import Database
from kit.ledger import Ledger
from kit.localtime import parse_when
from kit.privacy_hooks import ErasureContext, Hooks, hooks_from
from kit.update import apply as update_apply

__all__ = ["ErasureContext", "ErasureRefused", "Hooks", "erase", "hooks_from", "status", "tick"]

log = logging.getLogger("fieldkit.privacy")
ERASED_EVENT = "kit.personal_data_erased"
# Under the data dir: where database snapshots (kept by updates) live. They hold a copy of every table.
SNAPSHOT_DIR = "snapshots"
UPLOADS_DIR = "uploads"  # the dashboard's previews of uploaded documents (kit/web/dashboard.py)
SCHEMA = """
CREATE TABLE kit_privacy_erasures (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    event_ends TEXT NOT NULL,   -- kit.event_ends when it ran: the automatic erasure runs once per event
    forced INTEGER NOT NULL,
    event_seq INTEGER NOT NULL, -- the erasure's own ledger event; the events before it are truncated once HQ holds them
    summary TEXT NOT NULL,      -- what was erased and how many rows (JSON), never the data
    compacted_at REAL           -- checkpoint + VACUUM done (NULL: a crash came between; the next check does it)
);
"""


class ErasureRefused(Exception):
    """Erasing now would lose what HQ does not hold yet (and the lead did not force it)."""


# --- when --------------------------------------------------------------------------------------


def event_ends(config: Config) -> float | None:
    text = str(config["kit.event_ends"] or "").strip()
    if not text:
        return None
    return parse_when(text, config.tz)


def due_at(config: Config) -> float | None:
    """When the personal data is due to go (None: kit.event_ends is not set)."""
    ends = event_ends(config)
    return None if ends is None else ends + float(config["privacy.erase_after_hours"]) * 3600


def acknowledged_seq(db: Database, config: Config, hooks: Hooks) -> int | None:
    """The highest seq HQ holds of this kit's ledger (directly or through a hub); None: not joined to one."""
    held = [v for v in (h(db, config) for h in hooks.acknowledged) if v is not None]
    return max(held) if held else None


def readiness(db: Database, config: Config, hooks: Hooks) -> dict:
    acked = acknowledged_seq(db, config, hooks)
    newest = ledger_mod.last_seq(db)
    waiting = personal.counts(db)["waiting"]
    events_waiting = newest - (acked or 0)
    return {
        "joined": acked is not None,
        "acknowledged_seq": acked,
        "last_seq": newest,
        "events_waiting": max(0, events_waiting),
        "signups_waiting": waiting,
        "all_held": acked is not None and events_waiting <= 0 and waiting == 0,
    }


def last_erasure(db: Database) -> dict | None:
    try:
        row = db.query_one("SELECT * FROM kit_privacy_erasures ORDER BY id DESC LIMIT 1")
    except sqlite3.OperationalError:
        return None
    if row is None:
        return None
    return {
        "at": row["at"],
        "at_text": _iso(row["at"]),
        "event_ends": row["event_ends"],
        "forced": bool(row["forced"]),
        "event_seq": row["event_seq"],
        "summary": json.loads(row["summary"]),
        "compacted_at": row["compacted_at"],
    }


# --- what the kit holds --------------------------------------------------------------------------


def _core(ctx: ErasureContext) -> None:
    ctx.feature = "kit"
    ctx.delete("personal records waiting for or held by HQ (kit_personal_outbox)", "kit_personal_outbox")
    uploads = Path(ctx.config.data_dir) / UPLOADS_DIR
    ctx.remove_files(
        "documents uploaded on the dashboard, not imported (files)",
        sorted(uploads.iterdir()) if uploads.is_dir() else [],
    )
    snapshots = Path(ctx.config.data_dir) / SNAPSHOT_DIR
    ctx.remove_files(
        "database snapshots (files)",
        sorted(p for p in snapshots.rglob("*") if p.is_file()) if snapshots.is_dir() else [],
    )
    snap = update_apply.snapshot_path(ctx.config)  # an update's copy of kit.db (a crash can leave it)
    ctx.remove_files("the update's database snapshot (files)", [snap, snap.with_name(snap.name + ".tmp")])


def _walk(ctx: ErasureContext, hooks: Hooks) -> None:
    for name, hook in hooks.erase:
        ctx.feature = name
        hook(ctx)
    _core(ctx)  # after the features: a feature may erase its own kinds of personal records first


def holdings(db: Database, config: Config, hooks: Hooks) -> dict[str, dict[str, int]]:
    """What personal data the kit holds, per feature and place (rows or files), without changing anything."""
    conn = db.conn
    conn.execute("BEGIN")
    try:
        ctx = ErasureContext(conn, config, dry_run=True)
        _walk(ctx, hooks)
    finally:
        conn.execute("ROLLBACK")
    return ctx.counts


def status(db: Database, config: Config, hooks: Hooks, now: float | None = None) -> dict:
    """What `fieldkit privacy status` and the dashboard show."""
    now = time.time() if now is None else now
    held = holdings(db, config, hooks)
    places = [
        {"feature": f, "what": w, "count": n} for f, items in held.items() for w, n in items.items() if n
    ]
    ready = readiness(db, config, hooks)
    try:
        due = due_at(config)
    except ValueError as e:
        due, bad = None, str(e)
    else:
        bad = ""
    done = last_erasure(db)
    cp = ledger_mod.checkpoint(db.conn)
    if bad:
        message = f"kit.event_ends cannot be read ({bad}): nothing is erased by itself"
    elif not places:
        message = "the kit holds no personal data" + (f" (erased {done['at_text']})" if done else "")
    elif due is None:
        message = (
            "kit.event_ends is not set: personal data is kept until `fieldkit privacy erase` (or set it)"
        )
    elif not ready["all_held"]:
        message = (
            f"due {_iso(due)}, but erased only once HQ holds everything: {_waiting_text(ready)}"
            if ready["joined"]
            else f"due {_iso(due)}, but this kit is not joined to an HQ: erase with --now"
        )
    else:
        message = (
            f"will be erased {_iso(due)}" if now < due else "due now: erased at the sync service's next check"
        )
    return {
        "holds": places,
        "due_at": _iso(due) if due else None,
        "due": bool(due and now >= due),
        "event_ends": config["kit.event_ends"],
        "erase_after_hours": config["privacy.erase_after_hours"],
        "hq": ready,
        "last_erasure": done,
        "message": message,
        "ledger": {"checkpoint_seq": cp.seq if cp else 0, "keep_days": config["ledger.keep_days"]},
    }


def _waiting_text(ready: dict) -> str:
    return (
        f"{ready['events_waiting']} events and {ready['signups_waiting']} personal records are not at HQ yet"
        " (sync, or erase with --now)"
    )


def _iso(at: float | None) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds") if at is not None else ""


# --- erasing -------------------------------------------------------------------------------------


def erase(
    db: Database,
    config: Config,
    ledger: Ledger,
    hooks: Hooks,
    *,
    forced: bool,
    reason: str = "",
    beat: Callable[[], None] = lambda: None,
) -> dict:
    """Erase the kit's personal data everywhere it keeps it; refused (ErasureRefused) unless HQ holds
    everything or ``forced``. Returns what went, per feature and place. ``beat`` is called between the
    steps (a service's watchdog)."""
    if update_apply.read_journal(config) is not None:
        # Its rollback would put the snapshot (with every name) back; not even --now erases under it.
        log.warning("event=privacy_erase_refused reason='an update is being applied'")
        raise ErasureRefused(
            "not erasing: an update is being applied (updates/journal.json); erase once it is kept or"
            " rolled back (`fieldkit update status`)"
        )
    ready = readiness(db, config, hooks)
    if not forced and not ready["all_held"]:
        why = (
            _waiting_text(ready)
            if ready["joined"]
            else "this kit is not joined to an HQ (`fieldkit sync join`)"
        )
        log.warning("event=privacy_erase_refused reason=%r", why)
        raise ErasureRefused(f"not erasing: {why}; HQ must hold everything first, or erase anyway with --now")
    db.conn.execute(
        "PRAGMA secure_delete=ON"
    )  # deleted and overwritten rows are zeroed, not left in free space
    with db.transaction() as conn:
        ctx = ErasureContext(conn, config, dry_run=False)
        _walk(ctx, hooks)
        summary = {f: {w: n for w, n in items.items() if n} for f, items in ctx.counts.items()}
        summary = {f: items for f, items in summary.items() if items}
        event = ledger.append(
            conn,
            ERASED_EVENT,
            {
                "erased": summary,
                "forced": forced,
                "reason": reason[:200],
                "hq_held_everything": ready["all_held"],
            },
        )
        conn.execute(
            "INSERT INTO kit_privacy_erasures (at, event_ends, forced, event_seq, summary) VALUES (?,?,?,?,?)",
            (time.time(), str(config["kit.event_ends"] or ""), int(forced), event.seq, json.dumps(summary)),
        )
    beat()
    for _feature, path in ctx.files:
        shred(path)
    truncated = truncate_before_erasure(db, config, ledger, hooks, compacting=False)
    beat()
    compact_erasure(db)
    log.info(
        "event=personal_data_erased forced=%s seq=%d erased=%s files=%d truncated=%d",
        forced,
        event.seq,
        json.dumps(summary, separators=(",", ":")),
        len(ctx.files),
        truncated,
    )
    return {
        "erased": summary,
        "files": len(ctx.files),
        "event_seq": event.seq,
        "truncated": truncated,
        "hq_held_everything": ready["all_held"],
    }


def shred(path: Path) -> None:
    """Overwrite a file with zeros on disk, then remove it (a plain unlink leaves the blocks as they were)."""
    try:
        size = path.stat().st_size
        with open(path, "r+b") as f:
            f.write(b"\0" * size)
            f.flush()
            os.fsync(f.fileno())
        path.unlink()
    except FileNotFoundError:
        pass


def truncate_before_erasure(
    db: Database, config: Config, ledger: Ledger, hooks: Hooks, compacting: bool = True
) -> int:
    """Delete the events before the last erasure that HQ holds (their payloads may name people)."""
    done = last_erasure(db)
    acked = acknowledged_seq(db, config, hooks)
    if done is None or acked is None:
        return 0
    through = min(acked, done["event_seq"] - 1)
    cp = ledger_mod.checkpoint(db.conn)
    if through <= (cp.seq if cp else 0):
        return 0
    n = ledger_mod.truncate(
        db, ledger, through, "personal data erased: events before the erasure may name people"
    )
    if compacting:
        compact(db)
    return n


def truncate_old(db: Database, config: Config, ledger: Ledger, hooks: Hooks, now: float | None = None) -> int:
    """``ledger.keep_days``: delete the events older than that which HQ holds (0: keep every event)."""
    keep = float(config["ledger.keep_days"])
    acked = acknowledged_seq(db, config, hooks)
    if keep <= 0 or acked is None:
        return 0
    through = ledger_mod.truncation_point(db.conn, acked, keep, time.time() if now is None else now)
    cp = ledger_mod.checkpoint(db.conn)
    if through <= (cp.seq if cp else 0):
        return 0
    n = ledger_mod.truncate(db, ledger, through, f"older than ledger.keep_days ({keep:g}) and held by HQ")
    db.conn.execute("PRAGMA incremental_vacuum")  # the freed pages go back to the SD card, not only to SQLite
    return n


def compact(db: Database, attempts: int = 50) -> None:
    """Fold the WAL into the file, VACUUM (free pages go), and empty the WAL again."""
    conn = db.conn
    _checkpoint(conn, attempts)
    conn.execute("VACUUM")
    _checkpoint(conn, attempts)


def compact_erasure(db: Database) -> None:
    """Compact after the last erasure and record it, so a crash between the two is made good later."""
    compact(db)
    with db.transaction() as conn:
        conn.execute(
            "UPDATE kit_privacy_erasures SET compacted_at = ? WHERE id = (SELECT MAX(id) FROM"
            " kit_privacy_erasures) AND compacted_at IS NULL",
            (time.time(),),
        )


def _checkpoint(conn: sqlite3.Connection, attempts: int) -> None:
    for _ in range(attempts):  # a reader in another process holds the WAL for a moment: try again
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        if not busy:
            return
        time.sleep(0.1)
    log.warning("event=wal_checkpoint_incomplete reason='readers held the WAL'")


def tick(
    db: Database,
    config: Config,
    ledger: Ledger,
    hooks: Hooks,
    now: float | None = None,
    beat: Callable[[], None] = lambda: None,
) -> dict:
    """The privacy service's check (run by the sync service): erase when due and HQ holds everything,
    truncate what the last erasure left once HQ holds it, and truncate by age."""
    now = time.time() if now is None else now
    did: dict = {}
    try:
        due = due_at(config)
    except ValueError as e:
        log.warning("event=privacy_event_ends_unreadable error=%r", str(e))
        due = None
    if due is not None and now >= due:
        done = last_erasure(db)
        not_yet = done is None or done["event_ends"] != str(config["kit.event_ends"]) or done["at"] < due
        updating = update_apply.read_journal(config) is not None  # erase() refuses: wait for it
        if not_yet and not updating and readiness(db, config, hooks)["all_held"]:
            did["erased"] = erase(
                db,
                config,
                ledger,
                hooks,
                forced=False,
                reason="due: kit.event_ends + privacy.erase_after_hours",
                beat=beat,
            )
    done = last_erasure(db)
    if done is not None and done["compacted_at"] is None:
        compact_erasure(db)
    did["truncated_after_erasure"] = truncate_before_erasure(db, config, ledger, hooks)
    did["truncated_old"] = truncate_old(db, config, ledger, hooks, now)
    return did
