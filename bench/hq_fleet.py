"""HQ holding a fleet: 1,000 kits syncing at once into two `fieldkit hq serve` behind haproxy, one PostgreSQL.

Part 1, ingest. Each simulated kit has its own token and a ledger of 200 chained events (made as the
kit's ledger makes them). All start together, each after a random delay, and run a sync session as
the agent does over the kit's HQ client (sync/client.py): health, mark, upload (one batch: 200 is
under sync.batch_size), status. Two real `fieldkit hq serve` processes sit behind Debian's haproxy
on loopback ports, over one PostgreSQL (the local one, else a private cluster as the tests start).
Reported: events/s over the whole run, upload latency p50/p99, errors and retries, and that every
event is stored exactly once. Compared with the plain alternative: the same rows, batch by batch,
`INSERT ... ON CONFLICT (id) DO NOTHING` (executemany) over one connection into the same schema.

Part 2, the report. 1,000,000 events (sales, admissions, shifts) are generated in bulk with COPY
straight into HQ's store, then `fieldkit hq report` runs as its own process over all of them (target
<= 10 s). Compared with the plain alternative: one SQL GROUP BY (takings by kit and type) over the
same table.
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
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
from bench._fleet_kits import WALL, ingest, kit_records, register_kits  # noqa: E402
from bench.common import percentile, print_table, write_json  # noqa: E402

# --- the servers -----------------------------------------------------------------------------------


def wait_healthy(url: str, proc: subprocess.Popen | None, what: str, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/api/v1/health", timeout=1) as r:
                if json.loads(r.read()).get("status") == "ok":
                    return
        except OSError:
            pass
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up; see {log}")
        time.sleep(0.2)


def start_hq(db_url: str, home: Path, port: int, threads: int) -> subprocess.Popen:
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "FIELDKIT_HOME": str(home),
        "PYTHONPATH": str(HERE.parent),
        "FIELDKIT_SERVICE_LOG_LEVEL": "WARNING",
        "FIELDKIT_HQ_THREADS": str(threads),
    }
    with open(home / "hq.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kit", "hq", "serve", "--db", db_url, "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    wait_healthy(f"http://127.0.0.1:{port}", proc, "fieldkit hq serve", home / "hq.log")
    return proc


HAPROXY = """global
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout queue {queue}s
    option forwardfor
    option http-keep-alive
frontend hq
    bind 127.0.0.1:{port}
    default_backend hqs
backend hqs
    balance leastconn
    option httpchk GET /api/v1/health
{servers}
"""


def start_haproxy(
    work: Path, port: int, backends: list[int], maxconn: int, queue_s: float
) -> subprocess.Popen:
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(binary).exists():
        raise SystemExit(
            "haproxy is not installed: `make bench` installs it (.ci/bench-apt-packages), "
            "or apt-get install haproxy"
        )
    servers = "\n".join(
        f"    server hq{i} 127.0.0.1:{p} check maxconn {maxconn}" for i, p in enumerate(backends)
    )
    cfg = work / "haproxy.cfg"
    cfg.write_text(HAPROXY.format(port=port, servers=servers, queue=int(queue_s)))
    with open(work / "haproxy.log", "w") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([binary, "-f", str(cfg), "-db"], stdout=log, stderr=subprocess.STDOUT)
    wait_healthy(f"http://127.0.0.1:{port}", proc, "haproxy", work / "haproxy.log")
    return proc


def check_exactly_once(db_url: str, kits: int, events: int) -> dict:
    import psycopg

    with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        rows, ids = conn.execute("SELECT count(*), count(DISTINCT id) FROM hq_events").fetchone()
        bad = conn.execute(
            "SELECT count(*) FROM (SELECT kit FROM hq_events GROUP BY kit HAVING count(*) <> %s "
            "OR max(seq) <> %s OR count(DISTINCT seq) <> %s) x",
            (events, events, events),
        ).fetchone()[0]
        status = conn.execute("SELECT count(*) FROM hq_kit_status").fetchone()[0]
    ok = rows == ids == kits * events and bad == 0 and status == kits
    return {
        "rows": rows,
        "distinct_ids": ids,
        "kits_not_exact": bad,
        "status_rows": status,
        "exactly_once": ok,
    }


def plain_ingest(db_url: str, kits: list[tuple[str, str]], events: int) -> dict:
    """The same rows, one kit's batch at a time, INSERT ... ON CONFLICT DO NOTHING over one connection."""
    from datetime import UTC, datetime

    import psycopg

    from sync.hq import store
    from sync.hq.store import COLUMNS
    from sync.hq.validate import validate_record

    engine = store.make_engine(db_url)
    store.create_schema(engine)
    engine.dispose()
    now = datetime.now(UTC)
    batches = [
        [tuple(validate_record(r, kit, now)[c] for c in COLUMNS) for r in kit_records(kit, events)]
        for kit, _ in kits
    ]
    sql = (
        f"INSERT INTO hq_events ({','.join(COLUMNS)}) VALUES ({','.join(['%s'] * len(COLUMNS))})"
        " ON CONFLICT (id) DO NOTHING"
    )
    times = []
    with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        started = time.perf_counter()
        for batch in batches:
            t = time.perf_counter()
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(sql, batch)
            times.append(time.perf_counter() - t)
        seconds = time.perf_counter() - started
    return {
        "events_per_s": len(kits) * events / seconds,
        "seconds": seconds,
        "upload_p50_ms": percentile(times, 50) * 1000,
        "upload_p99_ms": percentile(times, 99) * 1000,
    }


# --- the report over a million events --------------------------------------------------------------------


def bulk_events(db_url: str, kits: int, per_kit: int) -> tuple[float, float]:
    """Generate kits x per_kit chained events straight into hq_events with COPY, then their report facts
    (sync/hq/facts.py) as ingest keeps them; returns the seconds of each."""
    from datetime import UTC, datetime

    import psycopg

    from kit.ledger import canonical_json
    from sync.hq import store
    from sync.hq.store import COLUMNS

    engine = store.make_engine(db_url)
    store.create_schema(engine)
    register_kits(engine, kits)
    engine.dispose()
    now = datetime.now(UTC)
    wall = datetime.fromisoformat(WALL)
    started = time.perf_counter()
    with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        with conn.cursor() as cur, cur.copy(f"COPY hq_events ({','.join(COLUMNS)}) FROM STDIN") as copy:
            for n in range(kits):
                for r in kit_records(f"kit{n:04d}", per_kit):
                    copy.write_row(
                        (
                            r["id"],
                            r["kit"],
                            r["seq"],
                            r["type"],
                            canonical_json(r["payload"]),
                            r["hlc"],
                            r["wall_time"],
                            True,
                            r["hash"],
                            now,
                            wall,
                            True,
                        )
                    )
        conn.execute("ANALYZE hq_events")
    copied = time.perf_counter() - started
    # COPY went around ingest, which keeps the report's facts as it stores events: fill them as ingest would.
    from sync.hq import facts

    engine = store.make_engine(db_url)
    started = time.perf_counter()
    facts.backfill(engine)
    with engine.begin() as conn:
        for table in ("hq_sale_facts", "hq_line_facts", "hq_payment_facts", "hq_scan_facts"):
            conn.exec_driver_sql(f"ANALYZE {table}")
    engine.dispose()
    return copied, time.perf_counter() - started


def run_report(db_url: str, home: Path, runs: int) -> list[float]:
    env = {
        **os.environ,
        "FIELDKIT_HOME": str(home),
        "PYTHONPATH": str(HERE.parent),
        "FIELDKIT_SERVICE_LOG_LEVEL": "WARNING",
    }
    home.mkdir(parents=True, exist_ok=True)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "kit",
                "hq",
                "report",
                "--db",
                db_url,
                "--format",
                "json",
                "--out",
                str(home / "report.json"),
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        times.append(time.perf_counter() - t)
        if done.returncode:
            raise RuntimeError(f"fieldkit hq report failed: {done.stderr[-2000:]}")
    return times


def plain_report(db_url: str, runs: int) -> list[float]:
    import psycopg

    sql = (
        "SELECT kit, type, count(*), sum(COALESCE((payload::jsonb->>'total_cents')::bigint, 0)) "
        "FROM hq_events GROUP BY kit, type"
    )
    times = []
    with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        for _ in range(runs):
            t = time.perf_counter()
            conn.execute(sql).fetchall()
            times.append(time.perf_counter() - t)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kits", type=int, default=1000)
    parser.add_argument("--events", type=int, default=200, help="events in each kit's ledger")
    parser.add_argument(
        "--spread", type=float, default=10.0, help="start delays are random in 0..SPREAD seconds"
    )
    parser.add_argument("--client-procs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8, help="waitress threads per HQ process (hq.threads)")
    parser.add_argument("--report-events", type=int, default=1_000_000)
    parser.add_argument("--report-runs", type=int, default=3)
    parser.add_argument("--skip-report", action="store_true")
    parser.add_argument(
        "--kit-timeout",
        type=float,
        default=20.0,
        help="each kit's request timeout (sync.timeout_seconds; 20 on a kit)",
    )
    parser.add_argument(
        "--queue-timeout",
        type=float,
        default=10.0,
        help="haproxy answers 503 to a request queued this long (under the kits' timeout, so "
        "they back off instead of timing out and sending the batch again)",
    )
    args = parser.parse_args()
    from kit.testing import free_port
    from sync.hq import store
    from sync.hq.testing import TestPostgres

    work = Path(tempfile.mkdtemp(prefix="fk-bench-fleet-"))
    pg = TestPostgres().start()
    procs: list[subprocess.Popen] = []
    rows, results = [], {}
    load = os.getloadavg()
    try:
        tag = f"fk_fleet_{os.getpid()}"
        db_url = pg.create_database(f"{tag}_hq")
        engine = store.make_engine(db_url)
        store.create_schema(engine)
        kits = register_kits(engine, args.kits)
        engine.dispose()
        ports = [free_port(), free_port()]
        procs += [start_hq(db_url, work / f"hq{i}", p, args.threads) for i, p in enumerate(ports)]
        lb = free_port()
        procs.append(start_haproxy(work, lb, ports, maxconn=args.threads, queue_s=args.queue_timeout))
        print(
            f"{args.kits} kits x {args.events} events -> haproxy :{lb} -> hq serve :{ports[0]}, :{ports[1]} -> "
            f"PostgreSQL :{pg.port}",
            flush=True,
        )
        fleet = ingest(
            f"http://127.0.0.1:{lb}", kits, args.events, args.spread, args.client_procs, args.kit_timeout
        )
        check = check_exactly_once(db_url, args.kits, args.events)
        plain = plain_ingest(pg.create_database(f"{tag}_plain"), kits, args.events)
        results["ingest"] = {"fleet": fleet, "check": check, "plain": plain}
        ratio = fleet["events_per_s"] / plain["events_per_s"]
        rows.append(
            {
                "part": "ingest",
                "method": f"{args.kits:,} kits -> haproxy -> 2 x hq serve",
                "events_per_s": fleet["events_per_s"],
                "p50_ms": fleet["upload_p50_ms"],
                "p99_ms": fleet["upload_p99_ms"],
                "note": f"exactly once: {check['exactly_once']}; failed kits {fleet['kits_failed']}, "
                f"retried {fleet['retried_kits']}, errors {fleet['errors']}",
                "ratio": ratio,
            }
        )
        rows.append(
            {
                "part": "ingest",
                "method": "plain INSERT ON CONFLICT, 1 connection",
                "events_per_s": plain["events_per_s"],
                "p50_ms": plain["upload_p50_ms"],
                "p99_ms": plain["upload_p99_ms"],
                "note": "per 200-row batch",
                "ratio": 1.0,
            }
        )
        print_table("Ingest (the report part follows)", rows)
        print(json.dumps({"fleet": fleet, "check": check}, default=str), flush=True)
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
        procs.clear()
        if not args.skip_report:
            per_kit = max(1, args.report_events // args.kits)
            report_db = pg.create_database(f"{tag}_report")
            made, facts_s = bulk_events(report_db, args.kits, per_kit)
            print(f"report: {args.kits * per_kit:,} events generated with COPY in {made:.1f}s, their facts in "
                  f"{facts_s:.1f}s", flush=True)
            times = run_report(report_db, work / "report-home", args.report_runs)
            plain_times = plain_report(report_db, args.report_runs)
            results["report"] = {
                "events": args.kits * per_kit,
                "seconds": times,
                "plain_seconds": plain_times,
                "facts_backfill_s": facts_s,
                "target_s": 10.0,
            }
            rows.append(
                {
                    "part": "report",
                    "method": f"fieldkit hq report, {args.kits * per_kit:,} events",
                    "events_per_s": args.kits * per_kit / min(times),
                    "p50_ms": percentile(times, 50) * 1000,
                    "p99_ms": max(times) * 1000,
                    "note": f"target <= 10 s: {max(times) <= 10}",
                    "ratio": min(plain_times) / min(times),
                }
            )
            rows.append(
                {
                    "part": "report",
                    "method": "plain SQL GROUP BY kit, type",
                    "events_per_s": args.kits * per_kit / min(plain_times),
                    "p50_ms": percentile(plain_times, 50) * 1000,
                    "p99_ms": max(plain_times) * 1000,
                    "note": "takings and counts only",
                    "ratio": 1.0,
                }
            )
    finally:
        for p in procs:
            p.kill()
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    end_load = os.getloadavg()
    note = (
        f"2 cores, load {load[0]:.2f} at the start, {end_load[0]:.2f} at the end; everything (clients, haproxy, "
        "both HQ processes, PostgreSQL) on this one machine; ratio: events/s over the plain row's"
    )
    print_table(f"HQ holding a fleet ({note})", rows)
    headline = {
        "fleet_events_per_s": round(rows[0]["events_per_s"]),
        "fleet_upload_p99_ms": round(rows[0]["p99_ms"]),
        "exactly_once": results["ingest"]["check"]["exactly_once"],
        "fleet_vs_plain": round(rows[0]["ratio"], 2),
    }
    if "report" in results:
        headline["report_1m_s"] = round(min(results["report"]["seconds"]), 2)
    write_json(
        "hq_fleet", {"args": vars(args), "note": note, "rows": rows, "results": results, "headline": headline}
    )


if __name__ == "__main__":
    main()
