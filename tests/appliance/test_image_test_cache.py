"""The image test's cache of Debian roots (image-build/test/cache.sh): what rebuilds it, what keeps it.

The key must change with what goes into the cached root (the recipe, provision.sh's package list,
the test overlay's packages, the mirror, the read-only switch) and only with that, so a change to the
kit reuses the root; the prune keeps the newest entries and never one another run is reading.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEST_DIR = ROOT / "image-build/test"
KEY_FILES = ["image-build/test/root-recipe.sh", "image-build/test/cache.sh", "image-build/test/overlay-packages",
             "image-build/test/run.sh", "image-build/provision.sh"]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the files the key is made of, plus a kit module and the test's run.sh."""
    copy = tmp_path / "repo"
    for rel in KEY_FILES:
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, copy / rel)
    (copy / "kit").mkdir()
    (copy / "kit/web.py").write_text("VERSION = 1\n")
    return copy


def entry_name(repo: Path, mirror: str = "http://deb.debian.org/debian", readonly: str = "1") -> str:
    script = ('. image-build/test/root-recipe.sh; . image-build/test/cache.sh; '
              'cache_entry_name "$PWD" "$1" "$2"')
    out = subprocess.run(["bash", "-c", script, "key", mirror, readonly], cwd=repo, check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def test_a_kit_change_reuses_the_root_and_a_package_change_rebuilds_it(repo: Path):
    first = entry_name(repo)
    assert first.startswith("bookworm-amd64-") and len(first) == len("bookworm-amd64-") + 16
    assert entry_name(repo) == first

    # The kit's code and the test's own checks are installed on top each run: same root.
    (repo / "kit/web.py").write_text("VERSION = 2\n")
    with open(repo / "image-build/test/run.sh", "a") as f:
        f.write("# another check\n")
    with open(repo / "image-build/provision.sh", "a") as f:
        f.write("# a reworded comment\n")
    assert entry_name(repo) == first

    # What shapes the root: each gives another entry.
    seen = {first}
    for change in ("overlay", "provision", "recipe"):
        if change == "overlay":
            with open(repo / "image-build/test/overlay-packages", "a") as f:
                f.write("hostapd dnsmasq\n")
        elif change == "provision":
            text = (repo / "image-build/provision.sh").read_text()
            assert "ca-certificates tzdata" in text
            (repo / "image-build/provision.sh").write_text(text.replace("ca-certificates tzdata", "ca-certificates tzdata cage"))
        else:
            with open(repo / "image-build/test/root-recipe.sh", "a") as f:
                f.write("ROOT_EXTRA_APT=mpv\n")
        name = entry_name(repo)
        assert name not in seen, change
        seen.add(name)
    assert entry_name(repo, mirror="http://mirror.example/debian") not in seen
    assert entry_name(repo, readonly="0") not in seen


def test_make_test_says_plainly_when_the_image_test_did_not_run(repo: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    env = {**os.environ, "FIELDKIT_IMAGE_TEST_CACHE": str(cache)}
    path = subprocess.run(["bash", "image-build/test/run.sh", "--cache-path"], cwd=repo, env=env, check=True,
                          capture_output=True, text=True).stdout.strip()
    assert path == f"{cache}/{entry_name(repo)}"

    cold = subprocess.run(["bash", "image-build/test/run.sh", "--if-cached"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=30)
    assert cold.returncode == 0
    assert cold.stdout.startswith(f"image test not run: no cached Debian root for this provision.sh and package list at {path}.")
    assert "make image-test" in cold.stdout
    assert not cache.exists(), "asking must not build or create anything"


def make_entry(cache: Path, name: str, age_s: float) -> Path:
    entry = cache / name
    (entry / "rootfs/etc").mkdir(parents=True)
    (entry / "built").write_text("built\n")
    stamp = time.time() - age_s
    os.utime(entry, (stamp, stamp))
    return entry


def prune(cache: Path, keep_name: str, keep: int = 2) -> str:
    env = {**os.environ, "FIELDKIT_IMAGE_TEST_CACHE": str(cache), "FIELDKIT_IMAGE_TEST_CACHE_KEEP": str(keep)}
    return subprocess.run(["bash", "-c", '. image-build/test/cache.sh; cache_prune "$1"', "prune", keep_name],
                          cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=30).stdout


def test_the_prune_keeps_the_current_and_the_newest_and_spares_what_is_in_use(tmp_path: Path):
    cache = tmp_path / "cache"
    current = make_entry(cache, "bookworm-amd64-aaaa", age_s=3000)  # the one this run uses: oldest by last use
    newest = make_entry(cache, "bookworm-amd64-bbbb", age_s=10)
    older = make_entry(cache, "bookworm-amd64-cccc", age_s=100)
    in_use = make_entry(cache, "bookworm-amd64-dddd", age_s=200)
    half_built = make_entry(cache, "bookworm-amd64-eeee.partial", age_s=5)

    # Another run reads "in_use": it holds the entry's lock shared (flock(2), as run.sh's `flock -s`).
    with open(cache / "bookworm-amd64-dddd.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        out = prune(cache, current.name)

    assert current.is_dir() and newest.is_dir()
    assert in_use.is_dir(), "an entry another run is reading must stay"
    assert not older.exists() and not half_built.exists()
    assert f"removed {older}" in out and f"removed {half_built}" in out

    # Once nobody reads it, it goes the same way.
    prune(cache, current.name)
    assert sorted(p.name for p in cache.iterdir() if p.is_dir()) == [current.name, newest.name]


def wheels_name(repo: Path) -> str:
    script = '. image-build/test/cache.sh; wheels_entry_name "$PWD" "$1"'
    out = subprocess.run(["bash", "-c", script, "wheels", sys.executable], cwd=repo, check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def test_the_cached_wheels_follow_the_declared_dependencies_not_the_kit(repo: Path):
    shutil.copy2(ROOT / "pyproject.toml", repo / "pyproject.toml")
    first = wheels_name(repo)
    assert first.startswith(f"wheels-py{sys.version_info[0]}.{sys.version_info[1]}-")

    text = (repo / "pyproject.toml").read_text()
    assert 'version = "' in text and '"flask>=2.3",' in text
    (repo / "pyproject.toml").write_text(text.replace('version = "', 'version = "9', 1))
    (repo / "kit/web.py").write_text("VERSION = 3\n")
    assert wheels_name(repo) == first, "a new version of the kit needs no new dependency wheels"

    (repo / "pyproject.toml").write_text(text.replace('"flask>=2.3",', '"flask>=2.3",\n  "requests>=2",'))
    assert wheels_name(repo) != first
