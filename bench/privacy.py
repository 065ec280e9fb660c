"""Erasing 100,000 attendees' personal data: kit/privacy.py's erase (every feature's hook, secure_delete,
WAL checkpoint, VACUUM, checkpoint) against the plain alternative, the same UPDATE statements with no
VACUUM, once with this SQLite's default secure_delete (Debian compiles it in) and once with it off (other
builds), which may leave old bytes in free pages (reported per run).

Each run starts from a fresh copy of the same kit (100,000 tickets with names and e-mails, 20,000
admissions). Reported: seconds per erasure (p50, p99 over the runs), the ratio, the database size after,
and whether a guest's surname or e-mail (or its search-index token) is still in the bytes of kit.db or its -wal.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
from bench.common import median, percentile, print_table, write_json  # noqa: E402


def make_kit(home: Path, tickets: int, admissions: int):
    os.environ.update(
        {"FIELDKIT_HOME": str(home), "FIELDKIT_KIT_SIMULATE": "1", "FIELDKIT_KIT_CLOCK_ASSUME_SYNCED": "1"}
    )
    from kit.config import load_config
    from kit.documents import import_document
    from kit.initkit import init_kit
    from kit.service import make_context

    init_kit(kit_id="bench1", site="bench", demo=False, force=True, echo=lambda *_: None)
    config = load_config()
    rows = ["Order code,Attendee name,E-mail,Secret,Product"]
    rows += [
        f"O{i:06d},Guest{i} Surname{i:06d},guest{i:06d}@bench-privacy.example,SEC{i:012d},Day pass"
        for i in range(tickets)
    ]
    ctx = make_context("bench", config)
    import_document(config, ctx.db, "checkin.attendees", ("\n".join(rows) + "\n").encode(), "guests.csv")
    from checkin.scans import record_scan
    from checkin.validate import DoorRules, KeyRing

    rules, ring = DoorRules.from_config(config), KeyRing()
    for i in range(admissions):
        record_scan(ctx.db, ctx.ledger, rules, f"SEC{i:012d}", keyring=ring, source="bench")
    ctx.db.checkpoint()
    ctx.db.close()
    return config


def needles(i: int) -> tuple[bytes, ...]:
    """A guest's surname and e-mail, as the table held them and as the search index's tokens (lowercased).
    The guest is one never admitted: an admission's ledger event (from before payloads named only the
    ticket) keeps the name until HQ holds it and the ledger is truncated, and this kit has no HQ."""
    return (
        f"Surname{i:06d}".encode(),
        f"surname{i:06d}".encode(),
        f"guest{i:06d}@bench-privacy.example".encode(),
        f"guest{i:06d}".encode(),
    )


def bytes_hold(db_path: Path, needle: bytes) -> bool:
    return any(p.exists() and needle in p.read_bytes() for p in (db_path, Path(str(db_path) + "-wal")))


def erase_ours(config) -> float:
    from kit.features import load_features
    from kit.privacy import erase, hooks_from
    from kit.service import make_context

    ctx = make_context("bench", config)
    t0 = time.perf_counter()
    erase(ctx.db, config, ctx.ledger, hooks_from(load_features()), forced=True, reason="bench")
    seconds = time.perf_counter() - t0
    ctx.db.close()
    return seconds


def erase_plain(config, secure_delete: bool | None = None) -> float:
    conn = sqlite3.connect(config.db_path, isolation_level=None)
    if secure_delete is not None:
        conn.execute(f"PRAGMA secure_delete={'ON' if secure_delete else 'OFF'}")
    t0 = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "UPDATE checkin_tickets SET name = '', last_name = '', email = '', comment = '', row_hash = ''"
    )
    conn.execute("INSERT INTO checkin_tickets_fts(checkin_tickets_fts) VALUES('rebuild')")
    conn.execute("UPDATE checkin_scans SET name = ''")
    conn.execute("COMMIT")
    seconds = time.perf_counter() - t0
    conn.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--admissions", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fk-bench-privacy-"))
    try:
        t0 = time.perf_counter()
        config = make_kit(work / "base", args.tickets, args.admissions)
        print(
            f"kit: {args.tickets:,} tickets, {args.admissions:,} admissions in {time.perf_counter() - t0:.1f}s",
            flush=True,
        )
        base = config.paths.home
        results: dict[str, dict] = {}
        methods = (
            ("kit/privacy.py erase", erase_ours),
            ("plain UPDATE (this SQLite's default)", erase_plain),
            ("plain UPDATE, secure_delete off", lambda c: erase_plain(c, secure_delete=False)),
        )
        for name, fn in methods:
            times, left, size = [], False, 0
            for run in range(args.runs):
                home = work / f"run{run}"
                shutil.rmtree(home, ignore_errors=True)
                shutil.copytree(base, home)
                os.environ["FIELDKIT_HOME"] = str(home)
                from kit.config import load_config

                cfg = load_config()
                times.append(fn(cfg))
                left = left or any(bytes_hold(cfg.db_path, n) for n in needles(args.tickets - 1))
                size = cfg.db_path.stat().st_size
            results[name] = {
                "runs": args.runs,
                "p50_s": median(times),
                "p99_s": percentile(times, 99),
                "db_mb_after": round(size / 1e6, 1),
                "email_bytes_left": left,
            }
        ours, plain = results["kit/privacy.py erase"], results["plain UPDATE (this SQLite's default)"]
        ratio = ours["p50_s"] / plain["p50_s"] if plain["p50_s"] else float("nan")
        rows = [{"method": k, **v} for k, v in results.items()]
        default = sqlite3.connect(":memory:").execute("PRAGMA secure_delete").fetchone()[0]
        print_table(
            f"Erasing {args.tickets:,} attendees (load {os.getloadavg()[0]:.1f}; SQLite {sqlite3.sqlite_version},"
            f" secure_delete {'on' if default else 'off'} by default)",
            rows,
        )
        print(f"\nratio (ours / plain, p50): {ratio:.2f}")
        write_json(
            "privacy",
            {
                "tickets": args.tickets,
                "admissions": args.admissions,
                "methods": rows,
                "headline": {
                    "erase_p50_s": round(ours["p50_s"], 2),
                    "ratio_vs_plain": round(ratio, 2),
                    "bytes_left": ours["email_bytes_left"],
                },
            },
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
