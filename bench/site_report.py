"""Close the night on site: the hub's reconciliation page (/sync/site) over a busy night's mirror, and what
it costs the web process's memory (the small-Pi issue's budget: the whole kit <= 200 MB RSS, <= 150 MB PSS).

A hub kit (`fieldkit up --simulate`, every feature, its own Mosquitto) whose mirror holds three kits'
ledgers of ``--events`` each (60 % sales, 30 % admissions, as bench/hq_fleet.py's kits), stored through
HQ's own ingest as the mirror stores them. The lead opens /sync/site ``--views`` times. Reported: each
view's latency (p50, p99), the web process's RSS and PSS settled before the first view, after the last
and ``--settle`` seconds later, and the peak of the process that builds the report. Compared, in the same
run, with the plain alternative doing the same work: `fieldkit hq report` over the same mirror file, as
its own process (HQ's report command: the same code, no web around it). The web builds the report in
such a child process (sync/site_report.py), so the plain row's peak RSS is also what a view costs for
the moment it takes.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import percentile, print_table, write_json  # noqa: E402
from bench.startup import children, health, memory_kb, process_name  # noqa: E402
from kit.testing import free_port  # noqa: E402

SITE = "benchsite"
KITS = ("merchA", "merchB", "merchC")


def fill_mirror(env: dict, events: int) -> None:
    """The hub's mirror.db with each kit's ledger, through HQ's ingest (as sync/mirror_hub.py stores it)."""
    code = f"""
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
from bench._fleet_kits import kit_records
from kit.config import load_config
from sync.hq import store
from sync.mirror_hub import mirror_url
config = load_config()
engine = store.make_engine(mirror_url(config))
store.create_schema(engine)
for kit in {KITS!r}:
    store.add_kit(engine, kit, {SITE!r})
    records = kit_records(kit, {events})
    for i in range(0, len(records), 500):
        store.ingest(engine, kit, records[i:i + 500])
"""
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def web_pid(supervisor: int) -> int:
    return next(p for p in children(supervisor) if process_name(p) == "web")


def mb(kb: int) -> float:
    return round(kb / 1024, 1)


def sign_in(url: str, pin: str):
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = opener.open(url + "login", timeout=10).read().decode()
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    opener.open(url + "login", data=f"pin={pin}&csrf_token={token}".encode(), timeout=10).read()
    return opener


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=6000, help="events in each of the three kits' ledgers")
    ap.add_argument("--views", type=int, default=5)
    ap.add_argument("--settle", type=float, default=20.0, help="seconds before the first view and after the last")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fk-bench-site-"))
    home, port = tmp / "hub", free_port()
    env = {k: v for k, v in os.environ.items() if k != "FIELDKIT_MQTT_PORT"}
    env.update({"FIELDKIT_HOME": str(home), "FIELDKIT_WEB_PORT": str(port), "FIELDKIT_WEB_HOST": "127.0.0.1",
                "FIELDKIT_SITE_HUB": "1", "FIELDKIT_SERVICE_LOG_LEVEL": "WARNING",
                "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    out = subprocess.run([sys.executable, "-m", "kit", "init", "--kit-id", "hub", "--site", SITE, "--demo"],
                         env=env, check=True, capture_output=True, text=True).stdout
    pins = {p[0]: p[1] for p in (line.split() for line in out.splitlines()) if len(p) == 2}
    fill_mirror(env, args.events)
    mirror = home / "var" / "mirror.db"
    url = f"http://127.0.0.1:{port}/"
    proc = subprocess.Popen([sys.executable, "-m", "kit", "up", "--simulate"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not ((h := health(url)) and all(v == "ok" for v in h["services"].values())):
            if time.monotonic() > deadline:
                raise RuntimeError("the hub kit did not become healthy")
            time.sleep(0.2)
        time.sleep(args.settle)
        web = web_pid(proc.pid)
        opener = sign_in(url, pins["lead"])
        for path in ("sync", "", "sync"):  # templates compiled, sessions warm: what any lead's page costs
            opener.open(url + path, timeout=30).read()
        before = memory_kb(web)
        total_before = sum(memory_kb(p)[1] for p in [proc.pid, *children(proc.pid)])
        latencies, after_each = [], []
        for _ in range(args.views):
            t = time.perf_counter()
            page = opener.open(url + "sync/site", timeout=120).read().decode()
            latencies.append(time.perf_counter() - t)
            after_each.append(memory_kb(web))
            if "merchA, merchB, merchC" not in page:
                raise RuntimeError("the site report does not list the mirrored kits")
        time.sleep(args.settle)
        later = memory_kb(web)
        total_after = sum(memory_kb(p)[1] for p in [proc.pid, *children(proc.pid)])
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    plain = []
    for _ in range(args.views):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "kit", "hq", "report", "--db", f"sqlite:///{mirror}", "--site", SITE,
                        "--format", "html", "--out", str(tmp / "report.html")], env=env, check=True,
                       capture_output=True)
        plain.append(time.perf_counter() - t)
    plain_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # kB, the largest child so far
    events = len(KITS) * args.events
    rows = [
        {"method": f"GET /sync/site on the hub, {events:,} mirrored events", "p50_s": percentile(latencies, 50),
         "p99_s": percentile(latencies, 99), "ratio": percentile(latencies, 50) / percentile(plain, 50),
         "web RSS/PSS before (MB)": f"{mb(before[0])} / {mb(before[1])}",
         "after (MB)": f"{mb(after_each[-1][0])} / {mb(after_each[-1][1])}",
         f"{args.settle:.0f} s later (MB)": f"{mb(later[0])} / {mb(later[1])}"},
        {"method": "fieldkit hq report over the same mirror file, own process", "p50_s": percentile(plain, 50),
         "p99_s": percentile(plain, 99), "ratio": 1.0, "web RSS/PSS before (MB)": "",
         "after (MB)": f"peak RSS of a report process {mb(plain_peak)}", f"{args.settle:.0f} s later (MB)": ""},
    ]
    print_table("The hub's site reconciliation: latency and the web process's memory", rows)
    headline = {"events": events, "view_p50_s": round(percentile(latencies, 50), 2),
                "view_p99_s": round(percentile(latencies, 99), 2),
                "web_pss_growth_mb": mb(later[1] - before[1]), "web_rss_growth_mb": mb(later[0] - before[0]),
                "report_process_peak_rss_mb": mb(plain_peak), "kit_total_pss_before_mb": mb(total_before),
                "kit_total_pss_after_mb": mb(total_after), "plain_p50_s": round(percentile(plain, 50), 2)}
    print(headline)
    write_json("site_report", {"args": vars(args), "rows": rows, "headline": headline,
                               "web_after_each_view_kb": after_each, "latencies_s": latencies, "plain_s": plain})


if __name__ == "__main__":
    main()
