"""Sync: a 100,000-event backlog uploaded by the real agent to a real `fieldkit hq serve` process.

Compared in the same run with the plain insert limit: the same rows inserted straight into the same
HQ schema with `executemany` (and with `COPY` on PostgreSQL), in transactions of the same batch size,
with the same durability settings HQ uses. SQLite, and PostgreSQL when one answers (the local server,
else a private cluster, as tests/sync does). Reported: events/s, per-batch p50 and p99 latency (for the
agent: from one acknowledged batch to the next, encoding and bookkeeping on the kit included), and the
ratio of the agent's rate to each plain rate.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
from bench.common import percentile, print_table, write_json  # noqa: E402

KIT = "bench1"
COLUMNS = ("id", "kit", "seq", "type", "payload", "hlc", "wall_time", "clock_synced", "hash", "received_at",
           "event_time", "time_trusted")


def make_kit(home: Path, events: int):
    from kit.clock import KitClock
    from kit.config import load_config
    from kit.db import apply_migrations
    from kit.features import all_migration_sets
    from kit.ledger import Ledger
    from kit.service import open_database

    env = {"FIELDKIT_HOME": str(home), "FIELDKIT_KIT_ID": KIT, "FIELDKIT_KIT_SITE": "benchsite",
           "FIELDKIT_KIT_CLOCK_ASSUME_SYNCED": "1"}
    config = load_config(env)
    db = open_database(config)
    apply_migrations(db, all_migration_sets())
    ledger = Ledger(KIT, KitClock(config.data_dir, True))
    for first in range(0, events, 5000):
        with db.transaction() as conn:
            for i in range(first, min(events, first + 5000)):
                ledger.append(conn, "pos.sale", {
                    "receipt": f"{KIT}-{i}", "kind": "sale", "currency": "EUR", "total_cents": 2500 + i % 700,
                    "lines": [{"sku": "TS-M", "qty": 1, "unit_cents": 2500, "total_cents": 2500}],
                    "payments": [{"method": "card" if i % 3 else "cash", "amount_cents": 2500, "reference": f"R{i}"}]})
    return config, db


def batch_stats(events: int, seconds: float, batch_seconds: list[float]) -> dict:
    return {"events_per_s": events / seconds, "seconds": round(seconds, 2),
            "batch_p50_ms": percentile(batch_seconds, 50) * 1000, "batch_p99_ms": percentile(batch_seconds, 99) * 1000}


# --- the kit's agent against `fieldkit hq serve` -------------------------------------------------

def start_hq(db_url: str, home: Path) -> tuple[subprocess.Popen, str]:
    from kit.testing import free_port

    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "FIELDKIT_HOME": str(home), "PYTHONPATH": str(HERE.parent), "FIELDKIT_SERVICE_LOG_LEVEL": "WARNING"}
    with open(home / "hq.log", "w") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([sys.executable, "-m", "kit", "hq", "serve", "--db", db_url, "--port", str(port)],
                                env=env, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "/api/v1/health", timeout=1) as r:
                if json.loads(r.read()).get("status") == "ok":
                    return proc, url
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"fieldkit hq serve did not come up; see {home / 'hq.log'}")
        time.sleep(0.2)


def agent_upload(config, db, db_url: str, home: Path, batch: int) -> dict:
    from sync.agent import SyncAgent
    from sync.hq import integrity, store

    engine = store.make_engine(db_url)
    store.create_schema(engine)
    token = store.add_kit(engine, KIT, "benchsite")
    proc, url = start_hq(db_url, home)
    try:
        cfg = config.with_values(sync__hq_url=url, sync__hq_token=token, sync__batch_size=batch)
        agent = SyncAgent(cfg, db)
        with db.transaction() as conn:
            conn.execute("DELETE FROM sync_cursor")
        total = int(db.scalar("SELECT MAX(seq) FROM events"))
        marks: list[float] = []
        started = time.perf_counter()
        result = agent.run_session(progress=lambda done, _total: marks.append(time.perf_counter()))
        seconds = time.perf_counter() - started
        if result.stored != total:
            raise RuntimeError(f"the agent stored {result.stored} of {total}")
    finally:
        proc.terminate()
        proc.wait(10)
    held = store.count_events(engine, KIT)
    chain = integrity.verify_chain(engine, KIT)
    engine.dispose()
    if held != total or not chain.ok or chain.linked != total:
        raise RuntimeError(f"HQ holds {held} of {total}, chain {chain.summary()}")
    batches = [b - a for a, b in zip(marks[:-1], marks[1:], strict=True)]  # marks[0]: the session's start
    return batch_stats(total, seconds, batches)


# --- the plain insert limit ------------------------------------------------------------------------

def plain_rows(db, dialect: str) -> list[tuple]:
    """The rows HQ would store, built before the clock starts (the limit is the database's, not ours)."""
    from kit.ledger import Event
    from sync.hq.validate import validate_record

    now = datetime.now(UTC)
    rows = []
    for r in db.query("SELECT * FROM events ORDER BY seq"):
        row = validate_record(Event.from_row(r).as_dict(), KIT, now)
        if dialect == "sqlite":  # what SQLAlchemy stores for DateTime and Boolean on SQLite
            for key in ("received_at", "event_time"):
                row[key] = row[key].astimezone(UTC).isoformat(" ", "microseconds")[:26]
            for key in ("clock_synced", "time_trusted"):
                row[key] = int(row[key])
        rows.append(tuple(row[c] for c in COLUMNS))
    return rows


def plain_sqlite(path: Path, rows: list[tuple], batch: int) -> dict:
    import sqlite3

    from sync.hq import store

    engine = store.make_engine(f"sqlite:///{path}")
    store.create_schema(engine)
    engine.dispose()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")  # as HQ runs it
    sql = f"INSERT INTO hq_events ({','.join(COLUMNS)}) VALUES ({','.join('?' * len(COLUMNS))})"
    times = []
    started = time.perf_counter()
    for first in range(0, len(rows), batch):
        t = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows[first:first + batch])
        conn.execute("COMMIT")
        times.append(time.perf_counter() - t)
    seconds = time.perf_counter() - started
    conn.close()
    return batch_stats(len(rows), seconds, times)


def plain_postgres(url: str, rows: list[tuple], batch: int, copy: bool) -> dict:
    import psycopg

    from sync.hq import store

    engine = store.make_engine(url)
    store.create_schema(engine)
    engine.dispose()
    conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
    sql = f"INSERT INTO hq_events ({','.join(COLUMNS)}) VALUES ({','.join(['%s'] * len(COLUMNS))})"
    times = []
    started = time.perf_counter()
    for first in range(0, len(rows), batch):
        t = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            if copy:
                with cur.copy(f"COPY hq_events ({','.join(COLUMNS)}) FROM STDIN") as out:
                    for row in rows[first:first + batch]:
                        out.write_row(row)
            else:
                cur.executemany(sql, rows[first:first + batch])
        times.append(time.perf_counter() - t)
    seconds = time.perf_counter() - started
    conn.close()
    return batch_stats(len(rows), seconds, times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batches", default="500,2000",
                        help="events per upload; the first is the headline (500 is sync.batch_size's default)")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    from sync.hq.testing import PostgresUnavailable, TestPostgres

    work = Path(tempfile.mkdtemp(prefix="fk-bench-sync-"))
    t0 = time.perf_counter()
    config, db = make_kit(work / "kit", args.events)
    print(f"kit ledger: {args.events:,} events written in {time.perf_counter() - t0:.1f}s", flush=True)
    load = os.getloadavg()
    rows: list[dict] = []
    headline: dict = {}
    pg = None
    try:
        if not args.no_postgres:
            try:
                pg = TestPostgres().start()
            except PostgresUnavailable as e:
                print(f"note: PostgreSQL skipped in this run: {e}")
        sqlite_rows = plain_rows(db, "sqlite")
        pg_rows = plain_rows(db, "postgresql") if pg else []
        for n, batch in enumerate(int(b) for b in args.batches.split(",")):
            agent = agent_upload(config, db, f"sqlite:///{work / f'hq{n}.db'}", work / f"hq-sqlite{n}", batch)
            plain = plain_sqlite(work / f"plain{n}.db", sqlite_rows, batch)
            ratio = agent["events_per_s"] / plain["events_per_s"]
            rows += [{"backend": "sqlite", "batch": batch, "method": "agent -> fieldkit hq serve", **agent, "ratio": ratio},
                     {"backend": "sqlite", "batch": batch, "method": "plain executemany", **plain, "ratio": 1.0}]
            print(f"sqlite batch {batch}: agent {agent['events_per_s']:,.0f} ev/s, plain {plain['events_per_s']:,.0f}",
                  flush=True)
            if n == 0:
                headline[f"sqlite_events_per_s_batch{batch}"] = round(agent["events_per_s"])
                headline["sqlite_vs_executemany"] = round(ratio, 2)
            if not pg:
                continue
            tag = f"fk_bench_{os.getpid()}_{n}"
            agent = agent_upload(config, db, pg.create_database(f"{tag}_hq"), work / f"hq-pg{n}", batch)
            many = plain_postgres(pg.create_database(f"{tag}_many"), pg_rows, batch, copy=False)
            copy = plain_postgres(pg.create_database(f"{tag}_copy"), pg_rows, batch, copy=True)
            rows += [{"backend": "postgresql", "batch": batch, "method": "agent -> fieldkit hq serve", **agent,
                      "ratio": agent["events_per_s"] / many["events_per_s"]},
                     {"backend": "postgresql", "batch": batch, "method": "plain executemany", **many, "ratio": 1.0},
                     {"backend": "postgresql", "batch": batch, "method": "plain COPY", **copy,
                      "ratio": agent["events_per_s"] / copy["events_per_s"]}]
            print(f"postgresql batch {batch}: agent {agent['events_per_s']:,.0f} ev/s, executemany "
                  f"{many['events_per_s']:,.0f}, COPY {copy['events_per_s']:,.0f}", flush=True)
            if n == 0:
                headline[f"postgresql_events_per_s_batch{batch}"] = round(agent["events_per_s"])
                headline["postgresql_vs_executemany"] = round(agent["events_per_s"] / many["events_per_s"], 2)
                headline["postgresql_vs_copy"] = round(agent["events_per_s"] / copy["events_per_s"], 2)
    finally:
        if pg:
            pg.stop()
        db.close()
        shutil.rmtree(work, ignore_errors=True)  # a 100k ledger and four HQ databases: a few hundred MB
    end_load = os.getloadavg()
    note = (f"load average {load[0]:.2f} at the start, {end_load[0]:.2f} at the end, on {os.cpu_count()} cores: a "
            f"shared machine, other work ran alongside; ratio: the agent's events/s over that row's plain method's, "
            f"1.0 on the executemany rows; the plain rows insert in transactions of the same batch size")
    print_table(f"Upload of a {args.events:,}-event backlog ({note})", rows)
    write_json("sync", {"events": args.events, "batches": args.batches, "note": note,
                        "load_average": {"start": load, "end": end_load},
                        "rows": rows, "headline": headline})


if __name__ == "__main__":
    main()
