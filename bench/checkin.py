"""Door check-in: verified + recorded check-ins per second with 100,000 tickets, name search, scan-to-verdict
latency from the serial scanner's pseudo-terminal to the verdict on the bus, door-to-door propagation,
and QR decoding per camera frame (bench/checkin_decode.py, when present).

Each measurement runs the kit's way beside the obvious alternative in the same run:
- check-ins: 8 submitters at once (scan sources, browsers) through the kit's group-committing recorder
  (one durable commit for every scan waiting at that moment) vs. each scan its own transaction on a
  fresh connection with keys re-read (what a handler that "just connects" does); plus one at a time;
- search: the FTS5 prefix index vs. LIKE '%text%' over the 100,000 rows.
Targets: >= 1,000 check-ins/s; scan-to-verdict p99 < 30 ms; door B knows of door A's admission in < 1 s.
Run: .venv/bin/python bench/checkin.py
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
from bench.common import median, percentile, print_table, write_json  # noqa: E402

TICKETS = int(os.environ.get("BENCH_CHECKIN_TICKETS", "100000"))
SCANS = int(os.environ.get("BENCH_CHECKIN_SCANS", "3000"))
LATENCY_SCANS = int(os.environ.get("BENCH_CHECKIN_LATENCY_SCANS", "300"))
PEER_SCANS = int(os.environ.get("BENCH_CHECKIN_PEER_SCANS", "40"))
SUBMITTERS = int(os.environ.get("BENCH_CHECKIN_SUBMITTERS", "8"))  # sources + browsers scanning at once
SEARCHES = ["anna", "mül", "jonas 4242", "O004242", "chlo ross", "hiro9"]
FIRST = ["Anna", "Ben", "Chloé", "Dario", "Eva", "Farid", "Greta", "Hiro", "Ines", "Jonas"]
LAST = ["Smith", "Jones", "Müller", "Rossi", "García", "Nakamura", "Okafor", "Berg", "Novak", "Lee"]


def kit_config(home: Path, port: int, kit_id: str, **extra: str):
    from kit.config import load_config
    from kit.db import Database, all_migration_sets, apply_migrations

    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDKIT_")}
    env.update({"FIELDKIT_HOME": str(home), "FIELDKIT_MQTT_PORT": str(port), "FIELDKIT_KIT_ID": kit_id,
                "FIELDKIT_KIT_SITE": "bench", "FIELDKIT_KIT_SIMULATE": "1", "FIELDKIT_KIT_CLOCK_ASSUME_SYNCED": "1",
                "FIELDKIT_CHECKIN_CAMERA_BACKEND": "none", "FIELDKIT_CHECKIN_FEEDBACK_BACKEND": "none",
                "FIELDKIT_CHECKIN_PREVIEW": "0", **extra})
    config = load_config(env)
    db = Database(config.db_path)
    apply_migrations(db, all_migration_sets())
    db.close()
    return config


def attendee_csv(n: int) -> bytes:
    lines = ["Order code,Attendee name,Product,Secret,E-mail"]
    for i in range(n):
        first, last = FIRST[i % 10], LAST[(i // 10) % 10]
        lines.append(f"O{i:06d},{first} {last} {i},{'VIP' if i % 7 == 0 else 'Day'},secret{i:06d},"
                     f"{first.lower()}{i}@example.org")
    return ("\n".join(lines) + "\n").encode()


def bench_throughput(home: Path) -> dict:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from checkin import signed
    from checkin.documents import ATTENDEES
    from checkin.keys import add_keys
    from checkin.recorder import ScanRecorder
    from checkin.scans import record_scan
    from checkin.search import search_tickets
    from checkin.validate import DoorRules, KeyRing
    from kit.clock import KitClock
    from kit.db import Database
    from kit.documents import import_document
    from kit.ledger import Ledger

    config = kit_config(home, 1, "bench")
    db = Database(config.db_path)
    key = Ed25519PrivateKey.generate()
    with db.transaction() as conn:
        add_keys(conn, [key.public_key()], "kit", "bench")
        # a realistic door: a few keys from earlier events, tried before the right one
        add_keys(conn, [Ed25519PrivateKey.generate().public_key() for _ in range(2)], "pretix", "old events")
    t0 = time.perf_counter()
    import_document(config, db, ATTENDEES, attendee_csv(TICKETS), "bench.csv")
    import_s = time.perf_counter() - t0
    ledger = Ledger(config.kit_id, KitClock(config.data_dir, True))
    rules = DoorRules.from_config(config)
    signed_codes = [signed.sign(key, signed.TicketPayload(f"S{i:08d}", 1)) for i in range(SCANS * 2 + 1000)]
    half = SCANS // 2

    def codes(offset: int) -> list[str]:  # half signed tickets, half list secrets, every one a fresh admission
        return [signed_codes[offset + i] if i % 2 else f"secret{(offset + i) * 7 % TICKETS:06d}" for i in range(half)]

    def run_threads(work, chunks: list[list[str]]) -> float:
        threads = [threading.Thread(target=work, args=(chunk,)) for chunk in chunks]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - t0

    # The kit: scans from several sources / browsers at once go through one group-committing recorder.
    recorder = ScanRecorder(db, ledger, rules, KeyRing())
    verdicts: list[str] = []
    kit_codes = codes(0)

    def kit_work(chunk: list[str]) -> None:
        for c in chunk:
            verdicts.append(recorder.record(c, source="bench")["verdict"])

    kit_s = run_threads(kit_work, [kit_codes[i::SUBMITTERS] for i in range(SUBMITTERS)])
    batches = recorder.batches
    recorder.close()

    # The obvious alternative: each scan its own transaction on its own fresh connection.
    naive_failed: list[str] = []

    def naive_work(chunk: list[str]) -> None:
        for c in chunk:
            fresh = Database(config.db_path)
            try:
                record_scan(fresh, ledger, rules, c, keyring=KeyRing(), source="bench")
            except sqlite3.OperationalError:  # "database is locked": the writers starve each other
                naive_failed.append(c)
            fresh.close()

    naive_codes = codes(half)
    naive_s = run_threads(naive_work, [naive_codes[i::SUBMITTERS] for i in range(SUBMITTERS)])
    # One scan at a time (a single door with one scanner) through the kit's path.
    single_codes = codes(2 * half)[:500]
    single = ScanRecorder(db, ledger, rules, KeyRing())
    t0 = time.perf_counter()
    for c in single_codes:
        single.record(c, source="bench")
    single_s = time.perf_counter() - t0
    single.close()
    admitted = sum(v == "admit" for v in verdicts)

    fts, like = [], []
    for q in SEARCHES * 5:
        t0 = time.perf_counter()
        search_tickets(db.conn, rules, q)
        fts.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        db.query("SELECT * FROM checkin_tickets WHERE name LIKE ? OR email LIKE ? OR order_code LIKE ? LIMIT 20",
                 (f"%{q}%", f"%{q}%", f"%{q}%"))
        like.append((time.perf_counter() - t0) * 1000)
    db.close()
    return {
        "tickets": TICKETS, "import s": import_s, "scans": half, "submitters": SUBMITTERS, "admitted": admitted,
        "kit check-ins/s": half / kit_s, "commits": batches, "naive check-ins/s": (half - len(naive_failed)) / naive_s,
        "naive failed (locked)": len(naive_failed),
        "kit / naive": naive_s / kit_s, "one at a time/s": len(single_codes) / single_s,
        "search FTS median ms": median(fts), "search FTS p99 ms": percentile(fts, 99),
        "search LIKE median ms": median(like), "search LIKE p99 ms": percentile(like, 99), "LIKE / FTS median": median(like) / median(fts),
    }


class VerdictWaiter:
    """Records when each message on a topic arrives (the listener's clock is the one that matters)."""

    def __init__(self, bus, topic: str):
        self.arrivals: list[tuple[float, dict]] = []
        self.cond = threading.Condition()
        bus.subscribe(topic, self._on)

    def _on(self, _topic: str, payload: dict) -> None:
        with self.cond:
            self.arrivals.append((time.perf_counter(), payload))
            self.cond.notify_all()

    def wait_count(self, n: int, timeout: float = 5.0) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.arrivals) >= n, timeout):
                raise TimeoutError(f"only {len(self.arrivals)} of {n} messages arrived")
            return self.arrivals[n - 1][0]


def start_service(config):
    from checkin.service import run
    from kit.service import make_context
    from kit.testing import wait_for

    ctx = make_context("checkin", config)
    assert ctx.bus.start(wait=5)
    thread = threading.Thread(target=run, args=(ctx,), daemon=True)
    thread.start()
    wait_for(lambda: hasattr(ctx, "door") and all(s.status() == "ok" for s in ctx.door.sources), 10,
             what="checkin service")
    return ctx, thread


def stop_service(ctx, thread) -> None:
    ctx.stopping.set()
    thread.join(10)
    ctx.bus.stop()


def listener(config, name: str):
    from kit.bus import Bus

    bus = Bus.from_config(config, name, will=False)
    assert bus.start(wait=5)
    return bus


def bench_latency(home: Path, broker) -> dict:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from checkin import signed
    from checkin.keys import add_keys
    from kit import topics
    from kit.db import Database

    config = kit_config(home, broker.port, "lat", FIELDKIT_CHECKIN_SHARE="0")
    key = Ed25519PrivateKey.generate()
    db = Database(config.db_path)
    with db.transaction() as conn:
        add_keys(conn, [key.public_key()], "kit", "bench")
    db.close()
    ctx, thread = start_service(config)
    bus = listener(config, "bench-listener")
    waiter = VerdictWaiter(bus, topics.event("lat", *topics.CHECKIN_SCANNED))
    time.sleep(0.3)  # let the subscription settle before the first measured scan
    scanner = next(s for s in ctx.door.sources if s.name == "serial-scanner")
    latencies = []
    for i in range(LATENCY_SCANS):
        code = signed.sign(key, signed.TicketPayload(f"L{i:08d}", 1))
        t0 = time.perf_counter()
        scanner.show(code)  # the bytes go into the pty exactly as a USB-CDC scanner sends them
        arrived = waiter.wait_count(i + 1)
        latencies.append((arrived - t0) * 1000)
    verdicts = {p["verdict"] for _, p in waiter.arrivals}
    bus.stop(clean=False)
    stop_service(ctx, thread)
    return {"scans": LATENCY_SCANS, "verdicts": ",".join(sorted(verdicts)), "p50 ms": median(latencies),
            "p99 ms": percentile(latencies, 99), "max ms": max(latencies)}


def bench_doors(home: Path) -> dict:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from checkin import signed
    from checkin.keys import add_keys
    from checkin.peers import bridge_conf
    from kit import topics
    from kit.db import Database
    from kit.testing import Mosquitto

    (home / "hub").mkdir(parents=True)
    (home / "b").mkdir()
    hub = Mosquitto(workdir=home / "hub").start()
    broker_b = Mosquitto(workdir=home / "b", extra_conf=bridge_conf("bench", "doorB", "127.0.0.1", hub.port)).start()
    config_a = kit_config(home / "kitA", hub.port, "doorA")
    config_b = kit_config(home / "kitB", broker_b.port, "doorB")
    key = Ed25519PrivateKey.generate()
    for config in (config_a, config_b):
        db = Database(config.db_path)
        with db.transaction() as conn:
            add_keys(conn, [key.public_key()], "kit", "bench")
        db.close()
    a = start_service(config_a)
    b = start_service(config_b)
    bus = listener(config_b, "bench-peer-listener")
    waiter = VerdictWaiter(bus, topics.event("doorB", "checkin", "peer"))
    time.sleep(1.5)  # first catch-up round trip and bridge subscriptions
    scanner = next(s for s in a[0].door.sources if s.name == "serial-scanner")
    base = len(waiter.arrivals)
    delays = []
    for i in range(PEER_SCANS):
        code = signed.sign(key, signed.TicketPayload(f"P{i:08d}", 1))
        t0 = time.perf_counter()
        scanner.show(code)
        delays.append((waiter.wait_count(base + i + 1, 5.0) - t0) * 1000)
    bus.stop(clean=False)
    for svc in (a, b):
        stop_service(*svc)
    broker_b.stop()
    hub.stop()
    return {"scans": PEER_SCANS, "p50 ms": median(delays), "p99 ms": percentile(delays, 99), "max ms": max(delays)}


def main() -> None:
    from kit.testing import Mosquitto

    started = time.perf_counter()
    home = Path(tempfile.mkdtemp(prefix="fk-bench-checkin-"))
    throughput = bench_throughput(home / "throughput")
    print_table(f"check-ins with {TICKETS:,} tickets imported (verify + record, synchronous=FULL)", [throughput])
    (home / "broker").mkdir()
    with Mosquitto(workdir=home / "broker") as broker:
        latency = bench_latency(home / "latency", broker)
    print_table("scan-to-verdict: line into the serial scanner's pty -> verdict on the bus", [latency])
    doors = bench_doors(home / "doors")
    print_table("door A scans -> door B has it (two brokers, bridged)", [doors])
    decode = None
    if (HERE / "checkin_decode.py").exists():
        from bench import checkin_decode

        decode = checkin_decode.run()
        print_table("QR decode per 640x480 frame (bench/checkin_decode.py)",
                    [{"decoder": k, **v} for k, v in decode["decoders"].items()])
    targets = {
        ">= 1,000 check-ins/s": throughput["kit check-ins/s"] >= 1000,
        "scan-to-verdict p99 < 30 ms": latency["p99 ms"] < 30,
        "door B knows in < 1 s (p99)": doors["p99 ms"] < 1000,
    }
    if decode:
        targets.update(decode["targets"])
    print_table("targets", [{"target": k, "met": "yes" if v else "NO"} for k, v in targets.items()])
    headline = {"check-ins/s": round(throughput["kit check-ins/s"]), "vs naive": f"{throughput['kit / naive']:.1f}x",
                "scan-to-verdict p99 ms": round(latency["p99 ms"], 1), "door-to-door p99 ms": round(doors["p99 ms"], 1)}
    if decode:
        headline.update(decode["headline"])
    write_json("checkin", {"headline": headline, "throughput": throughput, "latency": latency, "doors": doors,
                           "decode": decode, "targets": targets, "seconds": time.perf_counter() - started})


if __name__ == "__main__":
    main()
