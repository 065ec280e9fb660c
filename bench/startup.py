"""Startup: time from `fieldkit up --simulate` to every service healthy, and the kit's memory once settled.

Every process of the kit is counted, the private Mosquitto that `fieldkit up` starts included. Two figures
per process: RSS (VmRSS; pages shared between processes, such as the Python interpreter's, are counted in
each one, so the sum overstates) and PSS (``/proc/<pid>/smaps_rollup``: each shared page split between the
processes that map it, so the sum is what the kit really takes). Targets (issue 13 item 1): settled 60 s
after healthy, <= 200 MB RSS and <= 150 MB PSS in total. A Pi Zero 2 W has 512 MB in all.
"""

from __future__ import annotations

import argparse
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
from kit.testing import free_port  # noqa: E402


def memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in kB from /proc/<pid>/smaps_rollup; (0, 0) for a process that is gone."""
    fields: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                fields[parts[0].rstrip(":")] = int(parts[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return fields.get("Rss", 0), fields.get("Pss", 0)


def rss_kb(pid: int) -> int:
    return memory_kb(pid)[0]


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


def process_name(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"run" in cmd:  # a service, or a service group: `fieldkit run status power cues sync`
            return "+".join(a.decode() for a in cmd[cmd.index(b"run") + 1:] if a and not a.startswith(b"-"))
        return Path(cmd[0].decode()).name
    except (OSError, ValueError, IndexError):
        return str(pid)


def one_run(workdir: Path, settle: float) -> dict:
    home = workdir / f"kit{time.monotonic_ns()}"
    port = free_port()
    # no FIELDKIT_MQTT_PORT: `fieldkit up` starts its own private Mosquitto, counted with the rest
    env = {k: v for k, v in os.environ.items() if k != "FIELDKIT_MQTT_PORT"}
    env.update({"FIELDKIT_HOME": str(home), "FIELDKIT_WEB_PORT": str(port), "FIELDKIT_WEB_HOST": "127.0.0.1"})
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
        time.sleep(settle)  # settled: caches warm, telemetry flowing
        per_process = {"supervisor": memory_kb(proc.pid)}
        for pid in children(proc.pid):
            per_process[process_name(pid)] = memory_kb(pid)
        rows = {name: {"rss_mb": round(r / 1024, 1), "pss_mb": round(p / 1024, 1)}
                for name, (r, p) in per_process.items()}
        return {"healthy_s": healthy_after, "settle_s": settle, "processes": len(rows),
                "total_rss_mb": round(sum(r for r, _ in per_process.values()) / 1024, 1),
                "total_pss_mb": round(sum(p for _, p in per_process.values()) / 1024, 1),
                "per_process": rows, "mosquitto_counted": "mosquitto" in rows, "services": services}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--settle", type=float, default=60.0, help="seconds after healthy before measuring")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [one_run(Path(tmp), args.settle) for _ in range(args.runs)]
    rows = [{"run": i, "all healthy (s)": r["healthy_s"], "processes": r["processes"],
             "total RSS (MB)": r["total_rss_mb"], "total PSS (MB)": r["total_pss_mb"],
             "target": "RSS <= 200, PSS <= 150"} for i, r in enumerate(runs, 1)]
    print_table(f"fieldkit up --simulate: time to healthy, memory {args.settle:.0f} s after", rows)
    last = runs[-1]["per_process"]
    print_table("per process, last run (MB)", [{"process": n, "RSS": v["rss_mb"], "PSS": v["pss_mb"]}
                                               for n, v in sorted(last.items(), key=lambda kv: -kv[1]["pss_mb"])])
    times = sorted(r["healthy_s"] for r in runs if r["healthy_s"])
    headline = {"healthy_s_median": round(times[len(times) // 2], 2) if times else None,
                "total_rss_mb": runs[-1]["total_rss_mb"], "total_pss_mb": runs[-1]["total_pss_mb"],
                "target_rss_mb": 200, "target_pss_mb": 150}
    write_json("startup", {"runs": runs, "headline": headline})


if __name__ == "__main__":
    main()
