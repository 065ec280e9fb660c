"""kill -9 during a stream of sales: every acknowledged sale is there, receipt numbers have no gap and no duplicate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from kit.ledger import verify

SELLER = r"""
import sys, uuid
from kit.config import load_config
from kit.service import make_context
from pos.checkout import make_sale, parse_sale_request

config = load_config()
ctx = make_context("seller", config)
name = sys.argv[1]
i = 0
while True:
    i += 1
    key = f"{name}-{i}-{uuid.uuid4().hex[:8]}"
    body = {"items": [{"sku": "TS-L", "qty": 1}, {"sku": "STICKER", "qty": 1 + i % 3}],
            "payments": [{"method": "cash", "amount": "50.00"}], "idempotency_key": key}
    result = make_sale(ctx.db, ctx.ledger, config, parse_sale_request(body), by=name)
    # Only now, after COMMIT, is the sale acknowledged to anyone.
    print(f"ACK {result.receipt} {key}", flush=True)
"""


def _reader(proc, acks: list[tuple[str, str]]):
    for line in proc.stdout:
        if line.startswith("ACK "):
            _, receipt, key = line.split()
            acks.append((receipt, key))


@pytest.mark.system
def test_kill_9_during_sales_loses_nothing_acknowledged(pos_kit, kit_env):
    env = {**kit_env["env"], "PYTHONPATH": os.getcwd()}
    procs, acks, readers = [], {}, []
    for name in ("web", "till"):
        p = subprocess.Popen([sys.executable, "-c", SELLER, name], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True, env=env)
        acks[name] = []
        t = threading.Thread(target=_reader, args=(p, acks[name]), daemon=True)
        t.start()
        procs.append(p)
        readers.append(t)
    try:
        deadline = time.monotonic() + 60
        while len(acks["web"]) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(procs[0].pid, signal.SIGKILL)  # in the middle of its stream of sales
        procs[0].wait(10)
        seen = len(acks["till"])
        while len(acks["till"]) < seen + 20 and time.monotonic() < deadline:
            time.sleep(0.01)  # the other seller carries on after the crash
        os.kill(procs[1].pid, signal.SIGKILL)
        procs[1].wait(10)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for t in readers:
        t.join(5)
    assert len(acks["web"]) >= 40 and len(acks["till"]) >= 20

    db = pos_kit.db
    rows = {r["idempotency_key"]: r["receipt"] for r in db.query("SELECT idempotency_key, receipt FROM pos_sales")}
    for receipt, key in acks["web"] + acks["till"]:
        assert rows.get(key) == receipt, f"acknowledged sale {receipt} is missing"
    numbers = sorted(r[0] for r in db.query("SELECT n FROM pos_sales"))
    assert numbers == list(range(1, len(numbers) + 1)), "receipt numbers have a gap or a duplicate"
    assert db.scalar("SELECT COUNT(DISTINCT receipt) FROM pos_sales") == len(numbers)
    assert db.scalar("SELECT COUNT(*) FROM events WHERE type = 'pos.sale'") == len(numbers)
    assert db.scalar("SELECT COUNT(*) FROM pos_print_jobs") == len(numbers)
    assert db.scalar("SELECT last_n FROM pos_counters") == len(numbers)
    count, problems = verify(db)
    assert problems == []
