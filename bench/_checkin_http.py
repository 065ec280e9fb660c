"""``GET /api/v1/checkin/stats`` vs ``GET /api/v1/health`` over HTTP on the real web process (``fieldkit run
web``, waitress), 100,000 tickets and thousands of admissions stored (used by bench/checkin.py).

Both requests go over one kept-alive connection per client, signed in as door staff, in alternating
blocks (so a neighbour's load falls on both alike); then 20 clients at once on each for a few seconds.
"""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.common import median, percentile

ROOT = Path(__file__).parent.parent


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    def __init__(self, port: int, cookie: str = ""):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookie = cookie

    def get(self, path: str) -> tuple[int, bytes, http.client.HTTPResponse]:
        self.conn.request("GET", path, headers={"Cookie": self.cookie} if self.cookie else {})
        r = self.conn.getresponse()
        return r.status, r.read(), r

    def sign_in(self, pin: str) -> None:
        from urllib.parse import urlencode

        _, body, r = self.get("/login")
        self.cookie = "; ".join(c.split(";", 1)[0] for c in r.headers.get_all("Set-Cookie") or [])
        token = re.search(rb'name="csrf-token" content="([^"]+)"', body).group(1).decode()
        self.conn.request("POST", "/login", urlencode({"pin": pin, "csrf_token": token}),
                          {"Content-Type": "application/x-www-form-urlencoded", "Cookie": self.cookie})
        r = self.conn.getresponse()
        r.read()
        cookies = r.headers.get_all("Set-Cookie") or []
        if cookies:
            self.cookie = "; ".join(c.split(";", 1)[0] for c in cookies)
        status, _, _ = self.get("/api/v1/checkin/stats")
        if status != 200:
            raise RuntimeError(f"signing in as door failed: stats answered {status}")


def run(home: Path, broker_port: int, tickets_csv: bytes, admissions: int, seconds: float = 3.0,
        clients: int = 20) -> dict:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from checkin import signed
    from checkin.documents import ATTENDEES
    from checkin.keys import add_keys
    from checkin.scans import record_in
    from checkin.validate import DoorRules, KeyRing
    from kit.clock import KitClock
    from kit.config import load_config
    from kit.db import Database
    from kit.documents import import_document
    from kit.ledger import Ledger

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDKIT_")}
    env.update({"FIELDKIT_HOME": str(home), "FIELDKIT_MQTT_PORT": str(broker_port), "FIELDKIT_WEB_PORT": str(port),
                "FIELDKIT_WEB_HOST": "127.0.0.1", "FIELDKIT_KIT_SIMULATE": "1", "FIELDKIT_KIT_CLOCK_ASSUME_SYNCED": "1",
                "PYTHONPATH": str(ROOT)})
    init = subprocess.run([sys.executable, "-m", "kit", "init", "--kit-id", "http", "--site", "bench"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    if init.returncode:
        raise RuntimeError(init.stderr)
    pins = dict(p for p in (line.split() for line in init.stdout.splitlines()) if len(p) == 2)
    config = load_config(env)
    db = Database(config.db_path)
    import_document(config, db, ATTENDEES, tickets_csv, "bench.csv")
    key = Ed25519PrivateKey.generate()
    ledger, rules, keyring = Ledger(config.kit_id, KitClock(config.data_dir, True)), DoorRules.from_config(config), KeyRing()
    with db.transaction() as conn:
        add_keys(conn, [key.public_key()], "kit", "bench")
        for i in range(admissions):  # admissions already stored, as after the doors opened
            code = signed.sign(key, signed.TicketPayload(f"H{i:08d}", 1)) if i % 2 else f"secret{i:06d}"
            record_in(conn, ledger, rules, code, keyring=keyring, source="bench")
    db.checkpoint()
    db.close()
    proc = subprocess.Popen([sys.executable, "-m", "kit", "run", "web"], env=env, cwd=ROOT,
                            stdout=(home / "web.log").open("w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if Client(port).get("/api/v1/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the web process did not answer; see {home / 'web.log'}")
            time.sleep(0.2)
        return _measure(port, pins["door"], seconds, clients) | {"tickets": tickets_csv.count(b"\n") - 1,
                                                                  "admissions stored": admissions}
    finally:
        proc.terminate()
        proc.wait(10)


def _measure(port: int, pin: str, seconds: float, clients: int) -> dict:
    one = Client(port)
    one.sign_in(pin)
    paths = {"stats": "/api/v1/checkin/stats", "health": "/api/v1/health"}
    lat: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(5):
        for name in paths:
            one.get(paths[name])  # warm-up
    for _ in range(20):  # 1,000 requests each: enough for a p99 that is not two stray samples
        for name, path in paths.items():
            for _ in range(50):
                t0 = time.perf_counter()
                status, _, _ = one.get(path)
                lat[name].append((time.perf_counter() - t0) * 1000)
                assert status == 200, (path, status)
    signed_in = []
    for _ in range(clients):
        c = Client(port)
        c.sign_in(pin)
        signed_in.append(c)
    done = {name: 0 for name in paths}
    spent = {name: 0.0 for name in paths}
    for _ in range(3):  # alternating phases, so load from elsewhere falls on both
        for name, path in paths.items():
            counts = [0] * clients
            stop = time.perf_counter() + seconds / 3

            def work(n: int, path: str = path, stop: float = stop, counts: list[int] = counts) -> None:
                c = signed_in[n]
                while time.perf_counter() < stop:
                    c.get(path)
                    counts[n] += 1

            threads = [threading.Thread(target=work, args=(n,)) for n in range(clients)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            spent[name] += time.perf_counter() - t0
            done[name] += sum(counts)
    rps = {name: done[name] / spent[name] for name in paths}
    return {"stats p50 ms": median(lat["stats"]), "stats p99 ms": percentile(lat["stats"], 99),
            "health p50 ms": median(lat["health"]), "health p99 ms": percentile(lat["health"], 99),
            "stats / health p50": median(lat["stats"]) / median(lat["health"]),
            "stats / health p99": percentile(lat["stats"], 99) / percentile(lat["health"], 99),
            f"stats rps ({clients} clients)": rps["stats"], f"health rps ({clients} clients)": rps["health"],
            "health / stats rps": rps["health"] / rps["stats"]}
