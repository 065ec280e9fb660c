"""Database: WAL + synchronous=FULL, migrations recorded and idempotent, refusal while services run."""

import sqlite3
import subprocess
import sys

import pytest

from kit.db import (
    Database,
    DatabaseBusy,
    DatabaseLock,
    Migration,
    MigrationSet,
    apply_migrations,
    pending_migrations,
)


def test_connection_pragmas(tmp_path):
    db = Database(tmp_path / "kit.db")
    assert db.scalar("PRAGMA journal_mode") == "wal"
    assert db.scalar("PRAGMA synchronous") == 2  # FULL
    assert db.scalar("PRAGMA busy_timeout") == 5000


def test_migrations_are_recorded_and_idempotent(tmp_path):
    db = Database(tmp_path / "kit.db")
    sets = [MigrationSet("demo", [Migration("0001", "CREATE TABLE demo_a (x INTEGER);"),
                                   Migration("0002", lambda c: c.execute("CREATE TABLE demo_b (y TEXT)"))])]
    assert apply_migrations(db, sets) == [("demo", "0001"), ("demo", "0002")]
    assert apply_migrations(db, sets) == []
    assert pending_migrations(db, sets) == []
    names = {r[0] for r in db.query("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"demo_a", "demo_b", "_migrations"} <= names


def test_failed_migration_leaves_nothing_half_done(tmp_path):
    db = Database(tmp_path / "kit.db")
    bad = [MigrationSet("demo", [Migration("0001", "CREATE TABLE demo_a (x);\nINSERT INTO nowhere VALUES (1);")])]
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        apply_migrations(db, bad)
    assert db.scalar("SELECT COUNT(*) FROM sqlite_master WHERE name='demo_a'") == 0
    assert pending_migrations(db, bad) == [("demo", "0001")]


def test_transaction_rolls_back_on_error(tmp_path):
    db = Database(tmp_path / "kit.db")
    db.conn.execute("CREATE TABLE t (x)")
    with pytest.raises(ZeroDivisionError), db.transaction() as conn:
        conn.execute("INSERT INTO t VALUES (1)")
        raise ZeroDivisionError("a bug in the middle of a write")
    assert db.scalar("SELECT COUNT(*) FROM t") == 0


def test_migrate_refuses_while_a_service_holds_the_database(kit_env):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys,time; from kit.db import DatabaseLock; from kit.config import load_config;"
        "l=DatabaseLock(load_config().db_path); l.shared(); print('held', flush=True); time.sleep(30)")],
        env=kit_env["env"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = subprocess.run([sys.executable, "-m", "kit", "db", "migrate"], env=kit_env["env"],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 1
        assert "services are running" in result.stderr
    finally:
        holder.kill()
        holder.wait()
    result = subprocess.run([sys.executable, "-m", "kit", "db", "migrate"], env=kit_env["env"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "up to date" in result.stdout


def test_exclusive_lock_is_refused_while_shared(tmp_path):
    a, b = DatabaseLock(tmp_path / "kit.db"), DatabaseLock(tmp_path / "kit.db")
    a.shared()
    with pytest.raises(DatabaseBusy):
        b.exclusive()
    a.release()
    b.exclusive()
    b.release()


def test_a_bookkeeping_transaction_skips_the_fsync_and_every_other_stays_full(db):
    db.conn.execute("CREATE TABLE t (x)")
    seen = []
    with db.transaction(durable=False) as conn:
        seen.append(conn.execute("PRAGMA synchronous").fetchone()[0])
        conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(RuntimeError), db.transaction(durable=False):
        raise RuntimeError("a failed bookkeeping write")
    with db.transaction() as conn:
        seen.append(conn.execute("PRAGMA synchronous").fetchone()[0])
    assert seen == [1, 2]  # NORMAL for the bookkeeping only, FULL again for the next (money) transaction
    assert db.scalar("PRAGMA synchronous") == 2 and db.scalar("SELECT COUNT(*) FROM t") == 1


def test_a_writer_waits_for_another_process_s_write_lock_and_gives_up_at_the_busy_timeout(tmp_path):
    path = tmp_path / "kit.db"
    db = Database(path, busy_timeout_ms=3000)
    db.conn.execute("CREATE TABLE t (x)")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1], isolation_level=None);"
        "c.execute('BEGIN IMMEDIATE'); c.execute('INSERT INTO t VALUES (0)'); print('held', flush=True);"
        "time.sleep(float(sys.argv[2])); c.execute('COMMIT')"), str(path), "0.4"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with db.transaction() as conn:  # the lock comes free 0.4 s later: the sale goes in then
        conn.execute("INSERT INTO t VALUES (1)")
    holder.wait(10)
    assert [r[0] for r in db.query("SELECT x FROM t ORDER BY x")] == [0, 1]
    assert db.scalar("PRAGMA busy_timeout") == 3000  # reads keep SQLite's own handler

    impatient = Database(path, busy_timeout_ms=200)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1], isolation_level=None);"
        "c.execute('BEGIN IMMEDIATE'); print('held', flush=True); time.sleep(float(sys.argv[2]))"),
        str(path), "5"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(sqlite3.OperationalError, match="locked"), impatient.transaction() as conn:
            conn.execute("INSERT INTO t VALUES (2)")
        assert impatient.scalar("PRAGMA busy_timeout") == 200 and not impatient.conn.in_transaction
    finally:
        holder.kill()
        holder.wait()
    assert db.scalar("SELECT COUNT(*) FROM t") == 2
