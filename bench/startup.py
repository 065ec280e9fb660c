"""Startup: time from `fieldkit up --simulate` to every service healthy, and the kits' resident memory.

The obvious alternative compared in the same run: the same services started as one process each with
no supervisor is not meaningfully different, so the comparison here is against a bare Python
interpreter (the floor every process pays) to show what the kit adds per process.
A Pi Zero 2 W has 512 MB in all.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import print_table, write_json  # noqa: E402
from kit.testing import Mosquitto, free_port  # noqa: E402

RUNS = 3


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def children(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                out.append(int(p.name))
    return out


def health(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url + "api/v1/health", timeout=1) as r:
            return json.loads(r.read())
    except OSError:
        return None


def one_run(broker: Mosquitto, workdir: Path) -> dict:
    home = workdir / f"kit{time.monotonic_ns()}"
    port = free_port()
    env = {**os.environ, "FIELDKIT_HOME": str(home), "FIELDKIT_MQTT_PORT": str(broker.port),
           "FIELDKIT_WEB_PORT": str(port), "FIELDKIT_WEB_HOST": "127.0.0.1"}
    subprocess.run([sys.executable, "-m", "kit", "init", "--kit-id", "bench", "--site", "bench", "--demo"],
                   env=env, check=True, capture_output=True)
    url = f"http://127.0.0.1:{port}/"
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "kit", "up", "--simulate"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        healthy_after = None
        services: dict = {}
        while time.monotonic() - started < 90:
            h = health(url)
            if h:
                services = h["services"]
                if all(v == "ok" for v in services.values()):
                    healthy_after = time.monotonic() - started
                    break
            time.sleep(0.05)
        time.sleep(5)  # settle: caches warm, first telemetry sent
        pids = children(proc.pid)
        per_service = {}
        for pid in pids:
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                name = cmd[cmd.index(b"run") + 1].decode() if b"run" in cmd else Path(cmd[0].decode()).name
            except (OSError, ValueError, IndexError):
                name = str(pid)
            per_service[name] = rss_kb(pid) // 1024
        total_mb = (sum(rss_kb(p) for p in pids) + rss_kb(proc.pid)) / 1024
        return {"healthy_s": healthy_after, "total_rss_mb": round(total_mb, 1), "per_service_mb": per_service,
                "services": services}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def bare_python_rss_mb() -> float:
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
    time.sleep(1)
    mb = rss_kb(p.pid) / 1024
    p.wait()
    return mb


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, Mosquitto(workdir=Path(tmp)) as broker:
        runs = [one_run(broker, Path(tmp)) for _ in range(RUNS)]
    bare = bare_python_rss_mb()
    rows = []
    for i, r in enumerate(runs, 1):
        n = len(r["per_service_mb"]) + 1
        rows.append({"run": i, "all healthy (s)": r["healthy_s"], "total RSS (MB)": r["total_rss_mb"],
                     "processes": n, "bare python x processes (MB)": round(bare * n, 1),
                     "ratio to bare": round(r["total_rss_mb"] / (bare * n), 2)})
    print_table("fieldkit up --simulate: time to healthy and resident memory", rows)
    print_table("RSS per service (MB), last run", [runs[-1]["per_service_mb"]])
    times = [r["healthy_s"] for r in runs if r["healthy_s"]]
    headline = {"healthy_s_median": round(sorted(times)[len(times) // 2], 2) if times else None,
                "total_rss_mb": runs[-1]["total_rss_mb"]}
    write_json("startup", {"runs": runs, "bare_python_rss_mb": bare, "headline": headline})


if __name__ == "__main__":
    main()
