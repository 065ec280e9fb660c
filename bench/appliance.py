"""How long the appliance's boot steps take, as the units run them (real processes, real files).

- first boot: ``fieldkit appliance boot`` on a fresh kit (database, PINs hashed with scrypt, broker config)
- every later boot: the same command again (keeps secrets, re-applies fieldkit.toml)
- the obvious alternative for later boots: ``fieldkit init`` then ``fieldkit db migrate`` as two units
  would run them (two Python processes, and no broker configuration at all)
- ``personalise.sh`` on a 24 MB image (what a lead waits for on the laptop)

Run: .venv/bin/python bench/appliance.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import median, percentile, print_table, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIELDKIT = [sys.executable, "-c", "from kit.cli import main; main()"]


def timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return elapsed


def fresh_home(base: Path, n: int) -> dict:
    home = base / f"kit{n}"
    home.mkdir()
    (home / "fieldkit.toml").write_text('[kit]\nid = "bench"\nsite = "bench"\n[network]\nhotspot_ssid = "bench-kit"\n')
    return {**os.environ, "FIELDKIT_HOME": str(home)}


def make_image(path: Path) -> None:
    with open(path, "wb") as f:
        f.truncate(24 * 1024 * 1024)
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    subprocess.run(["sfdisk", "-q", str(path)], input="label: dos\nstart=2048, size=16384, type=c\nstart=18432, type=83\n",
                   text=True, check=True, capture_output=True)
    subprocess.run(["mformat", "-i", f"{path}@@{2048 * 512}", "-T", "16384", "-h", "64", "-s", "32", "::"],
                   check=True, env=env, capture_output=True)


def main() -> None:
    rows, results = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        etc = str(base / "etc")
        first = [timed(FIELDKIT + ["appliance", "boot", "--etc", etc, "--issue", str(base / "issue")], fresh_home(base, n))
                 for n in range(3)]
        env = fresh_home(base, 99)
        timed(FIELDKIT + ["appliance", "boot", "--etc", etc, "--issue", str(base / "issue")], env)
        later = [timed(FIELDKIT + ["appliance", "boot", "--etc", etc, "--issue", str(base / "issue")], env)
                 for _ in range(5)]
        alternative = [timed(FIELDKIT + ["init"], env) + timed(FIELDKIT + ["db", "migrate"], env) for _ in range(5)]
        image = base / "kit.img"
        make_image(image)
        personalise = [timed(["bash", str(ROOT / "image-build/personalise.sh"), str(image), "--kit-id", "door1",
                              "--site", "market", "--hotspot-ssid", "door1-kit", "--hotspot-password", "long enough 1"],
                             {**os.environ, "MTOOLS_SKIP_CHECK": "1"}) for _ in range(5)]
    for name, values in (("first boot (appliance boot, fresh kit)", first),
                         ("later boot (appliance boot again)", later),
                         ("alternative: init + db migrate (2 processes)", alternative),
                         ("personalise.sh on a 24 MB image", personalise)):
        rows.append({"step": name, "runs": len(values), "median_s": median(values), "p90_s": percentile(values, 90)})
        results[name] = {"median_s": median(values), "p90_s": percentile(values, 90), "runs": values}
    ratio = median(later) / median(alternative)
    results["later_boot_vs_alternative_ratio"] = ratio
    print_table("Appliance boot steps (wall time per run)", rows)
    print(f"\nlater boot / (init + db migrate) = {ratio:.2f}  (below 1: the one boot step is cheaper and also "
          "writes the broker config)")
    write_json("appliance", results)


if __name__ == "__main__":
    main()
