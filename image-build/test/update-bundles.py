"""The image test's release bundles (run on the host by run.sh, for the device scenario's update steps).

A release key pair and two development bundles (``--no-deps``: the kit's wheel only, installed beside
the dependencies the image already has) of this checkout with the patch version raised: the next
release, good, and the one after, whose every service exits at once, so its trial must fail and the
kit must go back by itself. Built exactly as `fieldkit release bundle` builds them.

    update-bundles.py REPO OUT    writes OUT/release.pub, OUT/good.fkb, OUT/broken.fkb, OUT/versions
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO, OUT = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
sys.path.insert(0, str(REPO))

from kit.update.build import build_release_bundle  # noqa: E402
from kit.update.keys import new_key_pair  # noqa: E402

BREAK = ("sys.exit(run_command(args[1:]))", 'sys.exit("this release is broken on purpose (image test)")')


def wheel_of(version: str, broken: bool, work: Path) -> Path:
    src = work / f"src-{version}"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", "build", "tests", "bench", "*.egg-info",
                                                             "__pycache__", ".venv", ".demo"))
    project = src / "pyproject.toml"
    project.write_text(re.sub(r'^version = "[^"]+"', f'version = "{version}"', project.read_text(), count=1,
                              flags=re.M))
    if broken:
        main = src / "kit" / "__main__.py"
        text = main.read_text()
        if BREAK[0] not in text:
            raise SystemExit(f"update-bundles: {BREAK[0]!r} is no longer in kit/__main__.py")
        main.write_text(text.replace(*BREAK))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "wheels"), str(src)],
                   check=True)
    return next((work / "wheels").glob(f"fieldkit-{version}-*.whl"))


def main() -> None:
    base = re.search(r'^version = "(\d+)\.(\d+)\.(\d+)"', (REPO / "pyproject.toml").read_text(), re.M)
    major, minor, patch = (int(g) for g in base.groups())
    versions = {"good": f"{major}.{minor}.{patch + 1}", "broken": f"{major}.{minor}.{patch + 2}"}
    OUT.mkdir(parents=True, exist_ok=True)
    key, pub = new_key_pair(OUT / "keys")
    shutil.copy(pub, OUT / "release.pub")
    with tempfile.TemporaryDirectory() as tmp:
        for name, version in versions.items():
            wheel = wheel_of(version, name == "broken", Path(tmp))
            build_release_bundle(key, OUT / f"{name}.fkb", "x86_64", source=REPO, wheel=wheel, no_deps=True)
    (OUT / "versions").write_text("".join(f"{n}={v}\n" for n, v in versions.items()))
    print(f"update-bundles: {', '.join(f'{n} {v}' for n, v in versions.items())} in {OUT}")


if __name__ == "__main__":
    main()
