"""Sale commit latency with 100,000 sales already recorded, beside a naive baseline, and receipt bytes build time.

The kit's way: one connection per process (per thread) reused for every sale, Python's statement cache
on, one BEGIN IMMEDIATE transaction per sale with synchronous=FULL (the sale, its receipt number, its
ledger event, the projection rows and its print job). The naive baseline runs the very same checkout
code but opens a new connection for every database access with the statement cache off — what a
request handler that "just connects" does. Target: p99 < 20 ms per sale.

The 100,000 earlier sales go through the same make_sale code, 5,000 to a transaction so the fill
takes about a minute; the measured sales each commit on their own, with a background checkpoint
every 2 s as the pos service does (so no sale pays for SQLite's automatic checkpoint).
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
from bench.common import median, percentile, print_table, write_json  # noqa: E402

PREFILL = int(os.environ.get("BENCH_POS_PREFILL", "100000"))
MEASURED = int(os.environ.get("BENCH_POS_SALES", "1000"))
CARTS = [
    {"items": [{"sku": "TS-L", "qty": 1}, {"sku": "STICKER", "qty": 2}], "payments": [{"method": "cash", "amount": "50.00"}]},
    {"items": [{"sku": "HOODIE-M", "qty": 1}], "payments": [{"method": "card", "reference": "T1", "amount": "45.00"}]},
    {"items": [{"sku": "TS-S", "qty": 2, "discount": {"percent": "10", "reason": "crew"}}, {"sku": "POSTER", "qty": 1}],
     "payments": [{"method": "card", "reference": "T2", "amount": "20.00"}, {"method": "cash", "amount": "40.00"}]},
]


def make_kit():
    home = Path(tempfile.mkdtemp(prefix="fk-bench-pos-"))
    os.environ.update({"FIELDKIT_HOME": str(home), "FIELDKIT_KIT_SIMULATE": "1", "FIELDKIT_KIT_CLOCK_ASSUME_SYNCED": "1"})
    from kit.config import load_config
    from kit.documents import import_document
    from kit.initkit import init_kit
    from kit.service import make_context

    init_kit(kit_id="bench", site="bench", echo=lambda *_: None)
    config = load_config()
    ctx = make_context("bench", config)
    catalogue = (HERE.parent / "pos" / "demo" / "catalogue.csv").read_bytes()
    import_document(config, ctx.db, "pos.catalogue", catalogue, "catalogue.csv")
    return config, ctx


def request(i: int, tag: str):
    from pos.checkout import parse_sale_request

    return parse_sale_request({**CARTS[i % len(CARTS)], "idempotency_key": f"{tag}-{i:08d}"})


def prefill(config, ctx) -> float:
    from pos.checkout import make_sale

    started = time.perf_counter()
    batch = 5000
    for start in range(0, PREFILL, batch):
        with ctx.db.transaction():
            for i in range(start, min(start + batch, PREFILL)):
                make_sale(ctx.db, ctx.ledger, config, request(i, "fill"))
    return time.perf_counter() - started


class NaiveDatabase:
    """The obvious alternative: a fresh connection (no statement cache) for every access."""

    def __init__(self, real):
        self._real = real
        self.path = real.path
        self._open: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=5, cached_statements=0)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        if self._open is not None:
            return self._open
        return self._connect()

    def transaction(self):
        from contextlib import contextmanager

        @contextmanager
        def tx():
            conn = self._connect()
            self._open = conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")
            finally:
                self._open = None
                conn.close()

        return tx()


def measure(config, db, ledger, tag: str) -> list[float]:
    """Sales one after the other, while a checkpointer does what the pos service's loop does."""
    import threading

    from pos.checkout import make_sale

    stop = threading.Event()

    def checkpointer():
        conn = sqlite3.connect(config.db_path, isolation_level=None, timeout=5)
        while not stop.wait(2.0):
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        conn.close()

    t = threading.Thread(target=checkpointer, daemon=True)
    t.start()
    times = []
    try:
        for i in range(MEASURED):
            req = request(i, tag)
            t0 = time.perf_counter()
            make_sale(db, ledger, config, req)
            times.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.001)  # a till is not a tight loop; leaves the checkpointer its turn
    finally:
        stop.set()
        t.join()
    return times


def receipt_build(config, ctx) -> list[dict]:
    from drivers.printer import render
    from pos.receipts import receipt_lines, sale_document

    doc = sale_document(ctx.db.conn, "bench-1")
    rows = []
    for profile in ("TM-T20II", "NT-5890K"):
        times = []
        for _ in range(200):
            t0 = time.perf_counter()
            data = render(receipt_lines(doc, config), profile)
            times.append((time.perf_counter() - t0) * 1000)
        rows.append({"profile": profile, "qr": "native" if profile == "TM-T20II" else "raster image", "bytes": len(data),
                     "p50_ms": round(median(times), 3), "p99_ms": round(percentile(times, 99), 3)})
    return rows


def main() -> None:
    config, ctx = make_kit()
    fill_s = prefill(config, ctx)
    ctx.db.checkpoint()
    recorded = ctx.db.scalar("SELECT COUNT(*) FROM pos_sales")
    print(f"prefilled {recorded} sales in {fill_s:.1f} s ({recorded / fill_s:,.0f}/s, same code, 5000 per transaction)")
    kit_times = measure(config, ctx.db, ctx.ledger, "kit")
    naive_times = measure(config, NaiveDatabase(ctx.db), ctx.ledger, "naive")
    rows = []
    for name, times in (("kit: one connection, statement cache", kit_times),
                        ("naive: connection per access, no cache", naive_times)):
        rows.append({"variant": name, "sales": len(times), "already_recorded": recorded,
                     "p50_ms": round(median(times), 3), "p99_ms": round(percentile(times, 99), 3),
                     "max_ms": round(max(times), 2), "sales_per_s": round(len(times) / (sum(times) / 1000), 1)})
    ratio = rows[1]["p50_ms"] / rows[0]["p50_ms"]
    print_table(f"Sale commit latency (synchronous=FULL, {recorded:,} sales already recorded)", rows)
    print(f"\nnaive / kit p50 ratio: {ratio:.2f}x; target p99 < 20 ms: "
          f"{'met' if rows[0]['p99_ms'] < 20 else 'NOT met'} ({rows[0]['p99_ms']} ms)")
    receipts = receipt_build(config, ctx)
    print_table("Receipt bytes build time (receipt lines + ESC/POS render, fresh printer object)", receipts)
    from kit.ledger import verify

    count, problems = verify(ctx.db)
    print(f"\nledger: {count} events, {'intact' if not problems else problems[:3]}")
    headline = {"sale_p50_ms": rows[0]["p50_ms"], "sale_p99_ms": rows[0]["p99_ms"], "naive_p50_ms": rows[1]["p50_ms"],
                "naive_over_kit_p50": round(ratio, 2), "receipt_build_p50_ms": receipts[0]["p50_ms"]}
    write_json("pos", {"prefill": {"sales": recorded, "seconds": round(fill_s, 1)}, "commit": rows,
                       "receipt_build": receipts, "headline": headline})


if __name__ == "__main__":
    main()
