"""Soak: a whole simulated kit under an event's load; does any process grow?

`fieldkit up --simulate` (every feature, its private Mosquitto) for ``--minutes`` (default 30) with 20 live-stream
clients that reconnect every 2-4 minutes (proportionally sooner in a short run), 5 scans/s at the door API, 1 sale/s at the merch API and a cue fired
every 10 s. RSS, PSS, open file descriptors and threads of every process are sampled every 10 s into the JSON.
Reported: growth of each from the first sample after the warm-up (5 minutes, or a sixth of a shorter run) to
the median of the last minute. Targets (issue 13 item 3): the web process grows <= 5 MB and no process grows in
descriptors or threads.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import RESULTS, median, print_table, write_json  # noqa: E402
from bench.startup import children, health, memory_kb, process_name  # noqa: E402
from bench.streams import Refused, Streams  # noqa: E402
from kit.testing import free_port  # noqa: E402

CLIENTS, SCANS_PER_S, SALES_PER_S, CUE_EVERY_S, SAMPLE_EVERY_S = 20, 5, 1, 10, 10
# Half the screens subscribe as the door page does (its camera preview frames included: ~2 a second, the largest
# messages on the bus), half to everything else ('#' leaves the preview out), as the dashboard does.
DOOR_TOPICS = "checkin/event/%2B,checkin/preview,status,%2B/health"
CART = {"items": [{"sku": "TS-L", "qty": 1}], "payments": [{"method": "cash", "amount": "50.00"}]}


def sign_in(base: str, pin: str, page: str) -> requests.Session:
    s = requests.Session()
    token = re.search(r'name="csrf-token" content="([^"]+)"', s.get(base + "/login", timeout=10).text).group(1)
    s.post(base + "/login", data={"pin": pin, "csrf_token": token}, timeout=10).raise_for_status()
    text = s.get(base + page, timeout=10).text
    s.headers["X-CSRF-Token"] = re.search(r'name="csrf-token" content="([^"]+)"', text).group(1)
    return s


def sample(sup_pid: int) -> dict:
    out = {}
    for pid in [sup_pid, *children(sup_pid)]:
        name = "supervisor" if pid == sup_pid else process_name(pid)
        rss, pss = memory_kb(pid)
        try:
            fds = len(os.listdir(f"/proc/{pid}/fd"))
            threads = len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            continue
        out[name] = {"pid": pid, "rss_mb": round(rss / 1024, 1), "pss_mb": round(pss / 1024, 1), "fds": fds,
                     "threads": threads}
    return out


class Load:
    """The event's traffic, each kind on its own thread; counts of what was sent and what failed."""

    def __init__(self, base: str, port: int, pins: dict, stop: threading.Event, reconnect_s: tuple[float, float]):
        self.base, self.port, self.stop, self.reconnect_s = base, port, stop, reconnect_s
        self.door = sign_in(base, pins["door"], "/door")
        self.merch = sign_in(base, pins["merch"], "/merch")
        self.lead = sign_in(base, pins["lead"], "/")
        self.counts = {"scans": 0, "sales": 0, "cues": 0, "reconnects": 0, "refused": 0, "errors": 0,
                       "stream_mb": 0.0}
        self.last_error = ""

    def _paced(self, per_s: float, action) -> None:
        next_at = time.monotonic()
        while not self.stop.is_set():
            try:
                action()
            except (requests.RequestException, OSError, RuntimeError) as e:
                self.counts["errors"] += 1
                self.last_error = repr(e)[:200]
            next_at += 1 / per_s
            self.stop.wait(max(0.0, next_at - time.monotonic()))

    def scan(self) -> None:
        n = self.counts["scans"] = self.counts["scans"] + 1
        self.door.post(self.base + "/api/v1/checkin/scan", json={"payload": f"SOAK-{n:08d}"}, timeout=10)

    def sale(self) -> None:
        n = self.counts["sales"] = self.counts["sales"] + 1
        r = self.merch.post(self.base + "/api/v1/pos/sales", json={**CART, "idempotency_key": f"soak-{n:08d}"},
                            timeout=10)
        if r.status_code != 201:
            raise RuntimeError(f"sale answered {r.status_code}: {r.text[:100]}")

    def cue(self) -> None:
        self.counts["cues"] += 1
        self.lead.post(self.base + "/api/v1/cues/go", json={}, timeout=10)

    def streams(self) -> None:
        cookie = "; ".join(f"{k}={v}" for k, v in self.lead.cookies.items())
        while not self.stop.is_set():
            pools = [Streams(self.port, cookie), Streams(self.port, cookie, topics=DOOR_TOPICS)]
            for n in range(CLIENTS):
                for _attempt in range(30):
                    try:
                        pools[n % 2].open()
                        break
                    except Refused:
                        # the screens that just hung up still count for a moment (until the server notices): a
                        # screen told 503 comes back after a second, as Retry-After asks
                        self.counts["refused"] += 1
                        self.stop.wait(1.0)
                    except (OSError, RuntimeError) as e:
                        self.counts["errors"] += 1
                        self.last_error = repr(e)[:200]
                        break
            self.stop.wait(random.uniform(*self.reconnect_s))
            for pool in pools:
                pool.close()
                self.counts["stream_mb"] = round(self.counts["stream_mb"] + pool.received / 1e6, 1)
            self.counts["reconnects"] += 1

    def start(self) -> list[threading.Thread]:
        jobs = [lambda: self._paced(SCANS_PER_S, self.scan), lambda: self._paced(SALES_PER_S, self.sale),
                lambda: self._paced(1 / CUE_EVERY_S, self.cue), self.streams]
        threads = [threading.Thread(target=j, daemon=True) for j in jobs]
        for t in threads:
            t.start()
        return threads


def growth(samples: list[dict], warmup_s: float) -> dict:
    after = [s for s in samples if s["t"] >= warmup_s] or samples[-1:]
    tail = [s for s in samples if s["t"] >= samples[-1]["t"] - 60]
    out = {}
    for name in after[0]["processes"]:
        base = after[0]["processes"][name]
        row = {}
        for key in ("rss_mb", "pss_mb", "fds", "threads"):
            last = median([s["processes"][name][key] for s in tail if name in s["processes"]])
            row[key] = round(last - base[key], 1)
        out[name] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    args = ap.parse_args()
    duration = args.minutes * 60
    warmup = min(300.0, duration / 6)
    with tempfile.TemporaryDirectory() as tmp:
        home, port = Path(tmp) / "kit", free_port()
        env = {k: v for k, v in os.environ.items() if k != "FIELDKIT_MQTT_PORT"}
        env.update({"FIELDKIT_HOME": str(home), "FIELDKIT_WEB_PORT": str(port), "FIELDKIT_WEB_HOST": "127.0.0.1"})
        init = subprocess.run([sys.executable, "-m", "kit", "init", "--kit-id", "soak", "--site", "bench", "--demo"],
                              env=env, check=True, capture_output=True, text=True)
        pins = {p[0]: p[1] for p in (line.split() for line in init.stdout.splitlines())
                if len(p) == 2 and p[0] in ("door", "merch", "lead")}
        base = f"http://127.0.0.1:{port}"
        # the kit's own log is kept beside the JSON: what a growth or an error means is usually in it
        RESULTS.mkdir(parents=True, exist_ok=True)
        kit_log = (RESULTS / "soak-kit.log").open("w")
        proc = subprocess.Popen([sys.executable, "-m", "kit", "up", "--simulate"], env=env, stdout=kit_log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        stop = threading.Event()
        samples: list[dict] = []
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                h = health(base + "/")
                if h and all(v == "ok" for v in h["services"].values()):
                    break
                time.sleep(0.2)
            else:
                raise SystemExit("the kit did not become healthy in 90 s")
            # every 2-4 minutes; a short run reconnects in proportion, at least a few times
            load = Load(base, port, pins, stop, (min(120, duration / 6), min(240, duration / 4)))
            load.start()
            started = time.monotonic()
            while (t := time.monotonic() - started) < duration:
                if proc.poll() is not None:
                    raise SystemExit(f"fieldkit up ended after {t:.0f} s (code {proc.returncode}); see {kit_log.name}")
                samples.append({"t": round(t, 1), "processes": sample(proc.pid), "load": dict(load.counts)})
                print(f"{t:6.0f}s  " + "  ".join(f"{n}={p['rss_mb']}MB/{p['fds']}fd/{p['threads']}th"
                                                 for n, p in samples[-1]["processes"].items()), flush=True)
                time.sleep(max(0.0, SAMPLE_EVERY_S - (time.monotonic() - started - t)))
            samples.append({"t": round(time.monotonic() - started, 1), "processes": sample(proc.pid),
                            "load": dict(load.counts)})
        finally:
            stop.set()
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    grown = growth(samples, warmup)
    rows = [{"process": n, "RSS (MB)": g["rss_mb"], "PSS (MB)": g["pss_mb"], "fds": g["fds"], "threads": g["threads"]}
            for n, g in sorted(grown.items())]
    print_table(f"growth after the first {warmup:.0f} s of {duration:.0f} s (last minute's median minus first)", rows)
    web = grown.get("web", {})
    verdict = {"web_rss_growth_mb": web.get("rss_mb"), "web_within_5_mb": web.get("rss_mb", 99) <= 5,
               "no_fd_or_thread_growth": all(g["fds"] <= 0 and g["threads"] <= 0 for g in grown.values())}
    print_table("load sent", [{**samples[-1]["load"], "last error": load.last_error or "-"}])
    print_table("targets", [verdict])
    write_json("soak", {"minutes": args.minutes, "warmup_s": warmup, "growth": grown, "samples": samples,
                        "load": samples[-1]["load"], "last_error": load.last_error, "headline": verdict})


if __name__ == "__main__":
    main()
