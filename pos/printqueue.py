"""The durable print queue: a table filled inside the writer's own transaction, emptied by the pos service.

A sale never waits on paper: it inserts its receipt here and returns; the service prints queued jobs
in order, marks them done, and retries while the printer is offline or out of paper. Printed jobs are
deleted after ``pos.print_retention_hours`` (a reprint rebuilds the receipt from the sale), a few
hundred at a time, so a day of sales does not stay on the SD card as print jobs.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta

from kit.db import Database


def _now(clock=None) -> str:
    t = clock.time() if clock is not None else datetime.now(UTC).timestamp()
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


def enqueue(conn: sqlite3.Connection, job_key: str, source: str, title: str, lines: list[dict], *,
            receipt: str | None = None, clock=None) -> int | None:
    """Queue a print document once per ``job_key`` (a replayed command does not print twice)."""
    cur = conn.execute(
        "INSERT INTO pos_print_jobs (job_key, source, title, receipt, document, created_at) VALUES (?,?,?,?,?,?)"
        " ON CONFLICT(job_key) DO NOTHING",
        (job_key, source, title[:120], receipt, json.dumps(lines, separators=(",", ":")), _now(clock)))
    return cur.lastrowid if cur.rowcount else None


def queued(db: Database, limit: int = 20) -> list[dict]:
    rows = db.query("SELECT * FROM pos_print_jobs WHERE status = 'queued' ORDER BY id LIMIT ?", (limit,))
    return [dict(r) | {"document": json.loads(r["document"])} for r in rows]


def mark_done(db: Database, job_id: int, nbytes: int) -> None:
    with db.transaction(durable=False) as conn:  # lost in a power cut, the receipt prints again: no harm
        # The printed lines are not kept: a reprint rebuilds them from the sale (saves the SD card).
        conn.execute("UPDATE pos_print_jobs SET status='done', printed_at=?, bytes=?, attempts=attempts+1,"
                     " last_error='', document='[]' WHERE id=?", (_now(), nbytes, job_id))


def mark_attempt_failed(db: Database, job_id: int, error: str) -> None:
    with db.transaction(durable=False) as conn:
        conn.execute("UPDATE pos_print_jobs SET attempts=attempts+1, last_error=? WHERE id=?", (error[:200], job_id))


def mark_unprintable(db: Database, job_id: int, error: str) -> None:
    """A job the printer can never print (bad document): set aside so it does not block the queue."""
    with db.transaction() as conn:
        conn.execute("UPDATE pos_print_jobs SET status='failed', attempts=attempts+1, last_error=? WHERE id=?",
                     (error[:200], job_id))


def depth(db: Database) -> int:
    """Jobs waiting for paper: read through the partial index of waiting jobs (cost: what waits)."""
    return db.scalar("SELECT COUNT(*) FROM pos_print_jobs WHERE status = 'queued'") or 0


def prune_printed(db: Database, retention_hours: float, batch: int = 200, clock=None) -> int:
    """Delete up to ``batch`` jobs printed more than ``retention_hours`` ago; returns how many.

    One short write transaction per call (a sale waits at most for one batch); failed jobs stay for a
    person to see. The caller repeats while it returns ``batch``.
    """
    now = datetime.fromtimestamp(clock.time() if clock is not None else datetime.now(UTC).timestamp(), UTC)
    cutoff = (now - timedelta(hours=max(0.0, float(retention_hours)))).isoformat(timespec="milliseconds")
    with db.transaction() as conn:
        return conn.execute(
            "DELETE FROM pos_print_jobs WHERE id IN (SELECT id FROM pos_print_jobs WHERE status = 'done'"
            " AND printed_at <= ? ORDER BY printed_at LIMIT ?)", (cutoff, int(batch))).rowcount


def give_back_pages(db: Database, pages: int = 256) -> int:
    """Return up to ``pages`` free pages to the file system when the database allows it (auto_vacuum=INCREMENTAL).

    Databases made before this kit version have auto_vacuum=NONE: there the freed pages stay in the
    file and new rows reuse them, so the file stops growing instead of shrinking (`fieldkit pos compact`).
    """
    conn = db.conn
    if conn.in_transaction or conn.execute("PRAGMA auto_vacuum").fetchone()[0] != 2 \
            or not conn.execute("PRAGMA freelist_count").fetchone()[0]:
        return 0
    before = conn.execute("PRAGMA page_count").fetchone()[0]
    # executescript steps the pragma to its end; execute() would step it once and free a single page.
    conn.executescript(f"PRAGMA incremental_vacuum({int(pages)});")
    return before - conn.execute("PRAGMA page_count").fetchone()[0]


def receipt_status(conn: sqlite3.Connection, receipt: str) -> dict:
    """What the screen says about a receipt's paper: queued (and why), printed, or failed."""
    row = conn.execute("SELECT status, attempts, last_error, printed_at FROM pos_print_jobs WHERE receipt = ?"
                       " ORDER BY id DESC LIMIT 1", (receipt,)).fetchone()
    if row is None:
        # Every sale and refund queues its receipt, and only printed jobs are deleted: no job left means
        # it printed more than pos.print_retention_hours ago (or the kit was rebuilt from its ledger).
        return {"status": "done", "attempts": None, "error": "", "printed_at": None, "pruned": True}
    return {"status": row["status"], "attempts": row["attempts"], "error": row["last_error"], "printed_at": row["printed_at"]}


def compact(db: Database, retention_hours: float) -> dict:
    """Prune printed jobs, then rewrite the file with auto_vacuum=INCREMENTAL (a kit made before it).

    ``VACUUM`` rewrites the whole database and blocks every writer while it runs, and needs free space
    the size of the file: only with the kit's services stopped (the caller holds the exclusive lock).
    """
    size = db.path.stat().st_size
    pruned = 0
    while (n := prune_printed(db, retention_hours, batch=5000)):
        pruned += n
    conn = db.conn
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    conn.execute("VACUUM")
    db.checkpoint()
    return {"pruned": pruned, "bytes_before": size, "bytes_after": db.path.stat().st_size,
            "auto_vacuum": conn.execute("PRAGMA auto_vacuum").fetchone()[0]}
