"""A service's database folds its WAL in a thread of its own: no commit pays for a checkpoint, and the WAL
still never grows past what the thread folds in (kit/db.py, Database.checkpoint_in_background)."""

from __future__ import annotations

from kit.db import BACKSTOP_AUTOCHECKPOINT_PAGES, Database
from kit.testing import wait_for


def _fill(db: Database, rows: int) -> None:
    for i in range(rows):
        with db.transaction() as conn:
            conn.execute("INSERT INTO t (body) VALUES (?)", (f"{i:06d}" + "x" * 3000,))


def test_commits_leave_the_checkpoint_to_the_thread_and_the_wal_is_folded_in(tmp_path):
    db = Database(tmp_path / "kit.db")
    db.conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    db.checkpoint_in_background()
    assert db.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == BACKSTOP_AUTOCHECKPOINT_PAGES
    db.release()  # the next thread's connection, made after the switch, has the same mark
    assert db.connect().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == BACKSTOP_AUTOCHECKPOINT_PAGES
    _fill(db, 1500)  # ~1500 pages: past SQLite's own 1000-page mark, which would have checkpointed in a commit

    main = tmp_path / "kit.db"
    # Until a checkpoint, the rows live in the WAL only; the commits no longer copy them (their mark is
    # 10,000 pages), so the database file growing to hold them is the thread's doing.
    wait_for(lambda: main.stat().st_size > 1500 * 3000, 10, 0.2, what="the background checkpoint")
    assert db.scalar("SELECT count(*) FROM t") == 1500
    db.close()
    reopened = Database(tmp_path / "kit.db")  # a CLI's database: SQLite's default checkpointing again
    assert reopened.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    reopened.close()
