"""The kit's one SQLite database: WAL, busy timeout, synchronous=FULL, explicit transactions.

Every write is one ``BEGIN IMMEDIATE`` transaction (``db.transaction()``), so the feature's state
and its ledger event commit together or not at all. Connections are per thread.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("fieldkit.db")
DATA_FILE_MODE = 0o640  # the service user and its group; nobody else


class DatabaseBusy(Exception):
    """Another process holds the database in a way that forbids this operation."""


@dataclass(frozen=True)
class Migration:
    name: str
    apply: str | Callable[[sqlite3.Connection], None]  # SQL script, or a function given the connection


@dataclass(frozen=True)
class MigrationSet:
    name: str  # the feature's name; its tables are prefixed with it
    migrations: Sequence[Migration]


# A service checkpoints the WAL in a thread of its own (Database.checkpoint_in_background) rather than in
# the commit that happens to cross SQLite's 1000-page mark: that commit would write and fsync the pages of
# the last thousand into the database file while a sale waits on it (most of a sale's p99 on an SD card).
BACKGROUND_CHECKPOINT_SECONDS = 1.0
BACKGROUND_CHECKPOINT_BYTES = 256 * 1024  # WAL size worth folding in
BACKSTOP_AUTOCHECKPOINT_PAGES = 10_000  # if the thread ever stalls, commits checkpoint again (~40 MB of WAL)


BEGIN_FIRST_PAUSE = 0.0001  # seconds between tries for the write lock, doubling up to
BEGIN_LONGEST_PAUSE = 0.001


def _is_busy(e: sqlite3.OperationalError) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(e) or "busy" in str(e)


class Database:
    def __init__(self, path: Path | str, busy_timeout_ms: int = 5000):
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._idle: list[sqlite3.Connection] = []  # given back by release(): the next thread without one takes it
        self._idle_lock = threading.Lock()
        self._autocheckpoint: int | None = None  # pages; None: SQLite's default (1000)
        self._checkpointer: threading.Thread | None = None
        self._stop_checkpoints = threading.Event()

    def checkpoint_in_background(self) -> None:
        """For a long-running service: commits no longer checkpoint, a daemon thread does (PASSIVE: it never
        waits for a writer and no writer waits for it)."""
        if self._checkpointer is not None:
            return
        self._autocheckpoint = BACKSTOP_AUTOCHECKPOINT_PAGES
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_AUTOCHECKPOINT_PAGES}")
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, args=(self._stop_checkpoints,),
                                              name="db-checkpoint", daemon=True)
        self._checkpointer.start()

    def _checkpoint_loop(self, stop: threading.Event) -> None:
        wal = self.path.with_name(self.path.name + "-wal")
        conn = None
        while not stop.wait(BACKGROUND_CHECKPOINT_SECONDS):
            try:
                if wal.stat().st_size < BACKGROUND_CHECKPOINT_BYTES:
                    continue
                if conn is None:
                    conn = self.connect()
                busy, frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                log.debug("event=wal_checkpoint busy=%s frames=%s done=%s", busy, frames, done)
            except FileNotFoundError:
                continue
            except sqlite3.Error as e:  # a busy or failing checkpoint: the next turn tries again
                log.warning("event=wal_checkpoint_failed error=%s", e)
        if conn is not None:
            conn.close()

    def connect(self) -> sqlite3.Connection:
        """A new connection (autocommit; transactions are explicit)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout_ms / 1000)
        conn.row_factory = sqlite3.Row
        if new and self.path.exists():  # sales and admissions: never readable by other users (WAL/SHM follow)
            os.chmod(self.path, DATA_FILE_MODE)
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        if new:  # only possible before the first table: lets features give deleted rows' pages back
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            log.warning("event=db_not_wal path=%s mode=%s", self.path, mode)
        # In WAL mode NORMAL can lose the last commits on power loss; money and admissions must not.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        if self._autocheckpoint is not None:
            conn.execute(f"PRAGMA wal_autocheckpoint={self._autocheckpoint}")
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            with self._idle_lock:
                c = self._idle.pop() if self._idle else None
            c = self._local.conn = c or self.connect()
        return c

    def release(self) -> None:
        """Give this thread's connection to the next thread that needs one (the web's request threads, at the
        end of each request): a server with 32 threads then keeps as many connections as requests ran at once,
        not one per thread ever used, each with its own page cache and descriptors."""
        c = getattr(self._local, "conn", None)
        if c is None:
            return
        self._local.conn = None
        if c.in_transaction:  # never hand on a half-done transaction
            c.close()
            return
        with self._idle_lock:
            self._idle.append(c)

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` write transaction on this thread's connection (nesting joins it).

        ``durable=False`` is for bookkeeping a power cut may undo without harm (a receipt marked printed
        prints again): its commit skips the fsync (synchronous=NORMAL), so on an SD card it costs no flash
        write of its own and never holds the write lock through one while a sale waits. The next durable
        commit on the database fsyncs the WAL, this one's pages with it.
        """
        conn = self.conn
        if conn.in_transaction:
            yield conn
            return
        if not durable:
            conn.execute("PRAGMA synchronous=NORMAL")
        try:
            self._begin_immediate(conn)
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")
        finally:
            if not durable:
                conn.execute("PRAGMA synchronous=FULL")

    def _begin_immediate(self, conn: sqlite3.Connection) -> None:
        """Take the write lock, asking again every 0.1-1 ms while another connection holds it.

        SQLite's own busy handler sleeps 1, 2, 5, 10 ms... between tries: a sale that meets the print
        loop's 0.1 ms "printed" commit would wait a whole millisecond, often three. The busy timeout is
        off only for this statement; reads keep SQLite's handler.
        """
        conn.execute("PRAGMA busy_timeout=0")
        try:
            deadline, pause = time.monotonic() + self.busy_timeout_ms / 1000, BEGIN_FIRST_PAUSE
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as e:
                    if not _is_busy(e) or time.monotonic() >= deadline:
                        raise
                time.sleep(pause)
                pause = min(pause * 2, BEGIN_LONGEST_PAUSE)
        finally:
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")

    def query(self, sql: str, params: Sequence | dict = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Sequence | dict = ()) -> sqlite3.Row | None:
        return self.conn.execute(sql, params).fetchone()

    def scalar(self, sql: str, params: Sequence | dict = ()):
        row = self.conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def checkpoint(self) -> None:
        """Fold the WAL into the main file (before a planned power-off)."""
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        if self._checkpointer is not None:  # used again after this, commits checkpoint as SQLite's default has it
            self._stop_checkpoints.set()
            self._stop_checkpoints, self._checkpointer, self._autocheckpoint = threading.Event(), None, None
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None


# --- holding the database: services share it, migrate/rebuild need it alone -------------------

class DatabaseLock:
    """An advisory lock file beside the database.

    Services hold it shared while they run; ``db migrate`` and ``ledger rebuild`` need it
    exclusively and refuse when any service holds it.
    """

    def __init__(self, db_path: Path):
        self.path = Path(str(db_path) + ".lock")
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, DATA_FILE_MODE)
        return self._fd

    def shared(self) -> None:
        fcntl.flock(self._open(), fcntl.LOCK_SH)

    def exclusive(self, wait_seconds: float = 0.0) -> None:
        fd = self._open()
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise DatabaseBusy(
                        f"{self.path.parent / self.path.stem}: kit services are running and hold the database; "
                        "stop them first (systemctl stop 'fieldkit-*' or Ctrl-C on `fieldkit up`)"
                    ) from None
                time.sleep(0.1)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


# --- migrations ---------------------------------------------------------------------------------

MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS _migrations (
    migration_set TEXT NOT NULL,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    PRIMARY KEY (migration_set, name)
)
"""


def pending_migrations(db: Database, sets: Sequence[MigrationSet]) -> list[tuple[str, str]]:
    db.conn.execute(MIGRATIONS_TABLE)
    done = {(r[0], r[1]) for r in db.query("SELECT migration_set, name FROM _migrations")}
    return [(s.name, m.name) for s in sets for m in s.migrations if (s.name, m.name) not in done]


def apply_migrations(db: Database, sets: Sequence[MigrationSet]) -> list[tuple[str, str]]:
    """Apply what is not yet recorded, each migration in its own transaction. Idempotent."""
    db.conn.execute(MIGRATIONS_TABLE)
    applied = []
    for s in sets:
        for m in s.migrations:
            with db.transaction() as conn:
                if conn.execute("SELECT 1 FROM _migrations WHERE migration_set=? AND name=?", (s.name, m.name)).fetchone():
                    continue
                if callable(m.apply):
                    m.apply(conn)
                else:
                    for statement in _split_sql(m.apply):
                        conn.execute(statement)
                conn.execute("INSERT INTO _migrations (migration_set, name) VALUES (?, ?)", (s.name, m.name))
                applied.append((s.name, m.name))
                log.info("event=migration_applied set=%s name=%s", s.name, m.name)
    return applied


def _split_sql(script: str) -> list[str]:
    """Split a script into statements (executescript would commit our transaction)."""
    statements, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                statements.append(buf.strip())
            buf = ""
    if buf.strip():
        statements.append(buf.strip())
    return statements
