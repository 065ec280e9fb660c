"""Sync: uploading a 100,000-event backlog from a kit to HQ over loopback, events per second.

The real agent (gzip JSON-lines batches, cursor moved per acknowledged batch) talks HTTP to the real
HQ app under waitress, on SQLite and on PostgreSQL (the local server if it answers, else a private
cluster). Several batch sizes; the obvious alternative, one event per request, is measured on a
slice of the backlog and the ratio reported.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
from bench.common import print_table, write_json  # noqa: E402


def make_kit(home: Path, events: int):
    from kit.clock import KitClock
    from kit.config import load_config
    from kit.db import all_migration_sets, apply_migrations
    from kit.ledger import Ledger
    from kit.service import open_database

    env = {"FIELDKIT_HOME": str(home), "FIELDKIT_KIT_ID": "bench1", "FIELDKIT_KIT_SITE": "benchsite",
           "FIELDKIT_KIT_CLOCK_ASSUME_SYNCED": "1"}
    config = load_config(env)
    db = open_database(config)
    apply_migrations(db, all_migration_sets())
    ledger = Ledger("bench1", KitClock(config.data_dir, True))
    for first in range(0, events, 5000):
        with db.transaction() as conn:
            for i in range(first, min(events, first + 5000)):
                ledger.append(conn, "pos.sale", {
                    "receipt": f"bench1-{i}", "kind": "sale", "currency": "EUR", "total_cents": 2500 + i % 700,
                    "lines": [{"sku": "TS-M", "qty": 1, "unit_cents": 2500, "total_cents": 2500}],
                    "payments": [{"method": "card" if i % 3 else "cash", "amount_cents": 2500, "reference": f"R{i}"}]})
    return config, db


def upload(config, db, hq_url_db: str, batch: int, limit: int | None = None) -> dict:
    from sync.agent import SyncAgent
    from sync.hq import store
    from sync.hq.testing import HQServer

    engine = store.make_engine(hq_url_db)
    store.create_schema(engine)
    server = HQServer(engine, threads=4)
    try:
        token = store.add_kit(engine, "bench1", "benchsite")
        cfg = config.with_values(sync__hq_url=server.url, sync__hq_token=token, sync__batch_size=batch)
        agent = SyncAgent(cfg, db)
        with db.transaction() as conn:
            conn.execute("DELETE FROM sync_cursor")
        total = limit or int(db.scalar("SELECT MAX(seq) FROM events"))
        started = time.perf_counter()
        if limit:  # only a slice: run batches by hand up to the limit
            client = agent.client()
            from kit.ledger import events_after
            from sync.agent import SessionResult

            result, cursor = SessionResult(), 0
            while cursor < limit:
                cursor = agent._upload(client, events_after(db, cursor, batch), result)
            client.close()
        else:
            result = agent.run_session()
            assert result.stored == total, (result.stored, total)
        seconds = time.perf_counter() - started
        assert store.count_events(engine, "bench1") == total
        return {"events": total, "seconds": round(seconds, 2), "events_per_s": total / seconds}
    finally:
        server.stop()
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batches", default="100,1000")
    parser.add_argument("--single-slice", type=int, default=500, help="events sent one per request")
    args = parser.parse_args()
    from sync.hq.testing import PostgresUnavailable, TestPostgres

    work = Path(tempfile.mkdtemp(prefix="fk-bench-sync-"))
    t0 = time.perf_counter()
    config, db = make_kit(work / "kit", args.events)
    print(f"kit ledger: {args.events} events written in {time.perf_counter() - t0:.1f}s")
    backends = {"sqlite": lambda n: f"sqlite:///{work / f'hq-{n}.db'}"}
    pg = None
    try:
        pg = TestPostgres().start()
        backends["postgresql"] = lambda n: pg.create_database(f"fk_bench_{os.getpid()}_{n}")
    except PostgresUnavailable as e:
        print(f"note: PostgreSQL skipped in this run: {e}")
    rows = []
    try:
        for backend, make_url in backends.items():
            n = 0
            single = upload(config, db, make_url(n), 1, limit=args.single_slice)
            rows.append({"backend": backend, "batch": 1, **single, "vs_one_per_request": 1.0})
            for batch in [int(b) for b in args.batches.split(",")]:
                n += 1
                r = upload(config, db, make_url(n), batch)
                rows.append({"backend": backend, "batch": batch, **r,
                             "vs_one_per_request": r["events_per_s"] / single["events_per_s"]})
                print(f"{backend} batch {batch}: {r['events_per_s']:,.0f} events/s")
    finally:
        if pg:
            pg.stop()
        db.close()
    print_table(f"Upload of a {args.events:,}-event backlog over loopback (batch 1: first {args.single_slice} events)", rows)
    write_json("sync", {"events": args.events, "rows": rows})


if __name__ == "__main__":
    main()
