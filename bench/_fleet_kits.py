"""The simulated kits of bench/hq_fleet.py: ledgers made as a kit makes them, sessions as the agent runs them."""

from __future__ import annotations

import gzip
import json
import multiprocessing
import random
import threading
import time

from bench.common import percentile

WALL = "2026-11-21T19:00:00.000+00:00"


def kit_records(kit: str, count: int, start_seq: int = 1, prev: str | None = None) -> list[dict]:
    """A kit's ledger events as it uploads them: each hash covers the event before."""
    from kit.ledger import GENESIS, _chain_hash, canonical_json

    prev = prev or GENESIS
    out = []
    for seq in range(start_seq, start_seq + count):
        n = seq % 10
        if n < 6:
            type_, payload = (
                "pos.sale",
                {
                    "receipt": f"{kit}-{seq}",
                    "kind": "sale",
                    "currency": "EUR",
                    "total_cents": 2500,
                    "shift_id": f"{kit}-s1",
                    "lines": [{"sku": "TS-M", "qty": 1, "unit_cents": 2500, "total_cents": 2500}],
                    "payments": [
                        {
                            "method": "cash" if seq % 3 == 0 else "card",
                            "amount_cents": 2500,
                            "reference": f"R{kit}{seq}",
                        }
                    ],
                },
            )
        elif n < 9:
            type_, payload = (
                "checkin.scanned",
                {
                    "ticket_key": f"T-{kit}-{seq}",
                    "verdict": "admit",
                    "admitted": True,
                    "door": "main",
                    "name": "Guest",
                },
            )
        else:
            type_, payload = "power.sample", {"soc": 80}
        rec = {
            "id": f"{kit}-{seq:07d}",
            "kit": kit,
            "seq": seq,
            "type": type_,
            "payload": payload,
            "hlc": seq << 16,
            "wall_time": WALL,
            "clock_synced": True,
        }
        rec["hash"] = prev = _chain_hash(
            prev, seq, rec["id"], kit, type_, canonical_json(payload), rec["hlc"], WALL, 1
        )
        out.append(rec)
    return out


# --- the simulated kits ------------------------------------------------------------------------------


def _kit_session(
    url: str, kit: str, token: str, body: bytes, lines: list, delay: float, out: dict, timeout: float
) -> None:
    from sync.agent import retry_delay
    from sync.client import HQClient, HQUnreachable, SyncError

    time.sleep(delay)
    started = time.perf_counter()
    tries = 0
    while True:
        tries += 1
        client = HQClient(url, token, kit, timeout=timeout)
        try:
            client.health()
            client.mark()
            t = time.perf_counter()
            answer = client.upload(lines, body)
            upload_s = time.perf_counter() - t
            for status in ("stored", "duplicate", "refused"):  # a retried session sends the batch again
                out[status] = out.get(status, 0) + sum(r.get("status") == status for r in answer.results)
            client.post_status(
                {
                    "version": "0.1.0",
                    "arch": "aarch64",
                    "battery_percent": 70.0,
                    "backlog": 0,
                    "lag_seconds": 0,
                    "clock_trusted": True,
                }
            )
            break
        except HQUnreachable as e:
            out.setdefault("errors", []).append(str(e)[:160])
            if tries >= 12:
                out["failed"] = str(e)[:200]
                return
            time.sleep(retry_delay(tries, 2.0, 300.0))  # as the agent backs off (sync.retry_min/max_seconds)
        except SyncError as e:
            out["failed"] = str(e)[:200]
            return
        finally:
            client.close()
    out.update(
        upload_s=upload_s,
        session_s=time.perf_counter() - started,
        tries=tries,
        start=started,
        end=time.perf_counter(),
    )


def _worker(args: tuple) -> list[dict]:
    url, kits, events, spread, start_at, seed, timeout = args
    from sync.client import Outgoing

    rng = random.Random(seed)
    prepared = []
    for kit, token in kits:  # the kit's work before it syncs: read and encode its ledger
        records = kit_records(kit, events)
        lines = [Outgoing(r["seq"], r["id"], json.dumps(r, separators=(",", ":"))) for r in records]
        body = gzip.compress("\n".join(line.line for line in lines).encode(), compresslevel=1)
        prepared.append((kit, token, body, lines, rng.uniform(0, spread)))
    time.sleep(max(0.0, start_at - time.time()))
    results = [{"kit": kit} for kit, *_ in prepared]
    threads = [
        threading.Thread(
            target=_kit_session, args=(url, kit, token, body, lines, delay, out, timeout), daemon=True
        )
        for (kit, token, body, lines, delay), out in zip(prepared, results, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results  # perf_counter is CLOCK_MONOTONIC, one clock for every process of this machine


def register_kits(engine, count: int) -> list[tuple[str, str]]:
    from sync.hq import store

    return [(f"kit{n:04d}", store.add_kit(engine, f"kit{n:04d}", f"site{n % 20:02d}")) for n in range(count)]


def ingest(
    url: str, kits: list[tuple[str, str]], events: int, spread: float, procs: int, timeout: float
) -> dict:
    start_at = time.time() + 3 + len(kits) * events / 40_000  # time for every worker to prepare its ledgers
    chunks = [kits[i::procs] for i in range(procs)]
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        parts = pool.map(
            _worker, [(url, c, events, spread, start_at, i, timeout) for i, c in enumerate(chunks)]
        )
    results = [r for part in parts for r in part]
    done = [r for r in results if "upload_s" in r]
    first, last = min(r["start"] for r in done), max(r["end"] for r in done)
    errors = [e for r in results for e in r.get("errors", [])]
    return {
        "kits": len(kits),
        "kits_done": len(done),
        "kits_failed": len(results) - len(done),
        "events_per_s": sum(r["stored"] for r in done) / (last - first),
        "seconds": last - first,
        "upload_p50_ms": percentile([r["upload_s"] for r in done], 50) * 1000,
        "upload_p99_ms": percentile([r["upload_s"] for r in done], 99) * 1000,
        "session_p99_ms": percentile([r["session_s"] for r in done], 99) * 1000,
        "retried_kits": sum(1 for r in done if r["tries"] > 1),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
        "stored": sum(r["stored"] for r in done),
        "duplicate": sum(r["duplicate"] for r in done),
        "refused": sum(r["refused"] for r in done),
    }
