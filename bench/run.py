"""`make bench`: run every benchmark in its own process, then print one summary table.

Each bench/<name>.py prints its own table and writes bench/results/<name>.json; this runner collects
the headline figures of each into one table and bench/results/summary.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
from bench.common import RESULTS, print_table, write_json  # noqa: E402

SKIP = {"run.py", "common.py", "checkin_decode.py", "soak.py"}  # checkin_decode: in checkin.py; soak: 30 min, alone


def main() -> int:
    names = sys.argv[1:] or sorted(p.stem for p in HERE.glob("*.py") if p.name not in SKIP and not p.name.startswith("_"))
    rows, failed = [], []
    for name in names:
        started = time.monotonic()
        print(f"\n=== bench/{name}.py", flush=True)
        code = subprocess.run([sys.executable, str(HERE / f"{name}.py")], cwd=HERE.parent).returncode
        seconds = time.monotonic() - started
        result_path = RESULTS / f"{name}.json"
        headline = ""
        if result_path.exists():
            data = json.loads(result_path.read_text()).get("results", {})
            headline = "; ".join(f"{k}={v}" for k, v in (data.get("headline") or {}).items())
        rows.append({"benchmark": name, "exit": code, "seconds": round(seconds, 1), "headline": headline})
        if code:
            failed.append(name)
    print_table("All benchmarks", rows)
    write_json("summary", {"benchmarks": rows})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
