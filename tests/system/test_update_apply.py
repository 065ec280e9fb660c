"""Updates on a kit run by `fieldkit up` from a release slot: a good bundle is kept, a broken one goes back,
and an updater killed at any step leaves the kit on a working release with its data.

The bundles are built here, without network: the kit's wheel (`pip wheel --no-deps` of a copy of this
tree with another version number) in a development bundle (`--no-deps`), whose slot sees the test's
environment for the dependencies. Built once per module: a slot venv and a kit restart take seconds.
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kit.testing import free_port, stop_process_group, wait_for
from kit.update.build import build_release_bundle
from kit.update.keys import new_key_pair

# Building three wheels and a slot, then a 45 s trial that must fail: well over the default 300 s on a busy machine.
pytestmark = [pytest.mark.system, pytest.mark.slow, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[2]
ARCH = {"arm64": "aarch64", "amd64": "x86_64"}.get(platform.machine().lower(), platform.machine().lower())
SERVICES = ["web", "status", "pos"]


def build_wheel(tmp: Path, version: str, broken: bool = False) -> subprocess.Popen:
    src = tmp / f"src-{version}"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git", "build", "tests", "bench", "*.egg-info", "__pycache__", ".venv", ".demo"
        ),
    )
    py = src / "pyproject.toml"
    py.write_text(py.read_text().replace('version = "0.1.0"', f'version = "{version}"', 1))
    if broken:  # every service of this release exits at once: it can never become healthy
        main = src / "kit" / "__main__.py"
        main.write_text(
            main.read_text().replace(
                "sys.exit(run_command(args[1:]))", 'sys.exit("this release is broken on purpose")'
            )
        )
    return subprocess.Popen(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "wheels"), str(src)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bundles")
    key, pub = new_key_pair(tmp / "keys")
    versions = {"base": ("0.1.1", False), "good": ("0.1.2", False), "broken": ("0.1.3", True)}
    builds = [build_wheel(tmp, v, broken) for v, broken in versions.values()]
    for b in builds:
        assert b.wait(300) == 0, b.stderr.read().decode()
    out = {"pub": pub.read_text().strip()}
    for name, (version, _broken) in versions.items():
        wheel = tmp / "wheels" / f"fieldkit-{version}-py3-none-any.whl"
        out[name], _ = build_release_bundle(
            key, tmp / f"{name}.fkb", ARCH, source=ROOT, wheel=wheel, no_deps=True
        )
    return out


class Kit:
    def __init__(self, home: Path, env: dict, log: Path):
        self.home, self.env, self.log_path, self.proc = home, env, log, None

    @property
    def releases(self) -> Path:
        return self.home / "var" / "releases"

    def current(self) -> str:
        return os.readlink(self.releases / "current")

    def python(self) -> str:
        return str(self.releases / "current" / "bin" / "python")

    def fieldkit(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.python(), "-m", "kit", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.home,
        )

    def start(self) -> None:
        args = [self.python(), "-m", "kit", "up", "--simulate", *(a for s in SERVICES for a in ("--only", s))]
        self.proc = subprocess.Popen(
            args,
            env=self.env,
            stdout=self.log_path.open("a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.home,
        )

    def status(self) -> dict:
        return json.loads(self.fieldkit("update", "status", "--json", timeout=60).stdout)

    def health(self) -> dict | None:
        import urllib.request

        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.env['FIELDKIT_WEB_PORT']}/api/v1/health", timeout=2
            ) as r:
                return json.loads(r.read())
        except OSError:
            return None

    def wait_online(self, timeout: float = 90) -> None:
        def online():
            h = self.health()
            # `--only` runs three of the kit's services: the others are not heard from, so "degraded"
            return h and h["status"] != "offline" and all(h["services"].get(s) == "ok" for s in SERVICES)

        try:
            wait_for(online, timeout, 0.5, what="kit up")
        except TimeoutError:
            raise AssertionError(f"kit not online; log:\n{self.log_path.read_text()[-5000:]}") from None

    def service_pythons(self) -> set[str]:
        """The release slot every running service process was started from (its python's venv)."""
        out = set()
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                env = Path(f"/proc/{pid}/environ").read_bytes()
            except OSError:
                continue
            if b"run" in cmd[1:4] and f"FIELDKIT_HOME={self.home}".encode() in env:
                out.add(os.path.realpath(os.path.dirname(os.path.dirname(cmd[0].decode()))))
        return out

    def events(self) -> list[tuple]:
        conn = sqlite3.connect(self.home / "var" / "kit.db")
        try:
            return conn.execute("SELECT seq, id, type, payload FROM events ORDER BY seq").fetchall()
        finally:
            conn.close()

    def outcomes(self) -> list[dict]:
        from kit.event_codec import unpack

        return [json.loads(unpack(p)) for _s, _i, t, p in self.events() if t.startswith("update.")]


@pytest.fixture(scope="module")
def kit(bundles, tmp_path_factory, mosquitto):
    tmp = tmp_path_factory.mktemp("kit")
    home = tmp / "home"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {
        "FIELDKIT_HOME": str(home),
        "FIELDKIT_MQTT_PORT": str(mosquitto.port),
        "FIELDKIT_WEB_PORT": str(port),
        "FIELDKIT_WEB_HOST": "127.0.0.1",
        "FIELDKIT_KIT_SIMULATE": "1",
        "FIELDKIT_UPDATE_TRIAL_SECONDS": "45",
        "FIELDKIT_UPDATE_TRUSTED_KEYS": bundles["pub"],
        "FIELDKIT_UPDATE_PATH": str(tmp / "usb"),
    }
    init = subprocess.run(
        [sys.executable, "-m", "kit", "init", "--kit-id", f"up{port}", "--site", "upd", "--demo"],
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert init.returncode == 0, init.stderr
    # The first slot, installed while nothing runs (the test's own install is 0.1.0).
    first = subprocess.run(
        [sys.executable, "-m", "kit", "update", "apply", str(bundles["base"])],
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.returncode == 0, first.stdout + first.stderr
    k = Kit(home, env, tmp / "up.log")
    assert k.current() == "0.1.1"
    k.start()
    k.wait_online()
    yield k
    if k.proc:
        stop_process_group(k.proc)


def test_a_good_bundle_is_kept_and_the_services_come_back_on_it_with_the_data(kit, bundles):
    sale = kit.fieldkit("pos", "sell", "TS-L", "--pay", "cash:30.00", "--json")
    assert sale.returncode == 0, sale.stderr
    before = kit.events()
    assert kit.service_pythons() == {str(kit.releases / "0.1.1")}

    refused = kit.fieldkit("update", "apply", str(bundles["good"]))
    assert refused.returncode == 1 and "selling" in refused.stderr  # a sale a minute ago, shift open

    updater = subprocess.Popen(
        [kit.python(), "-m", "kit", "update", "apply", "--now", str(bundles["good"])],
        env=kit.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=kit.home,
    )
    wait_for(
        lambda: (kit.home / "var" / "updates" / "hold.json").exists() or updater.poll() is not None,
        120,
        what="the trial's hold",
    )
    during = kit.fieldkit("pos", "sell", "TS-L", "--pay", "cash:30.00")
    out, _ = updater.communicate(timeout=240)
    assert updater.returncode == 0, out + kit.log_path.read_text()[-3000:]
    assert during.returncode != 0 and "Updating" in during.stderr  # no sale taken during the trial

    assert "Kept" in out and kit.current() == "0.1.2"
    for path in (kit.releases / "0.1.2", kit.releases / "0.1.2" / "bin" / "fieldkit"):  # the service user runs it
        assert path.stat().st_mode & 0o005 == 0o005, f"{path} is not readable by the service user"
    kit.wait_online()
    assert kit.service_pythons() == {str(kit.releases / "0.1.2")}
    after = kit.events()
    assert after[: len(before)] == before  # every event kept, in order
    assert kit.outcomes()[-1] | {"reason": ""} == {
        **kit.outcomes()[-1],
        "outcome": "applied",
        "from_version": "0.1.1",
        "to_version": "0.1.2",
        "reason": "",
    }
    status = kit.status()
    assert status["version"] == "0.1.2" and status["hold"] is None and status["in_progress"] is None
    assert kit.fieldkit("pos", "sell", "TS-M", "--pay", "cash:30.00").returncode == 0  # selling again


def test_a_bundle_whose_services_fail_goes_back_with_the_data_as_before(kit, bundles):
    was = kit.current()  # 0.1.2 after the test above
    before = kit.events()
    done = kit.fieldkit("update", "apply", "--now", str(bundles["broken"]), timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"went back to {was}" in done.stderr and "did not become healthy" in done.stderr
    assert kit.current() == was and not (kit.releases / "0.1.3").exists()
    kit.wait_online()
    assert kit.service_pythons() == {str(kit.releases / was)}
    after = kit.events()
    assert after[: len(before)] == before and len(after) == len(before) + 1  # the rollback's own event only
    last = kit.outcomes()[-1]
    assert last["outcome"] == "rolled_back" and last["to_version"] == "0.1.3" and "healthy" in last["reason"]
    assert kit.status()["last"]["outcome"] == "rolled_back"


@pytest.mark.parametrize("step", ["installing", "held", "switching", "trial"])
def test_an_updater_killed_at_any_step_leaves_a_working_release(kit, bundles, step):
    was = kit.current()
    before = kit.events()
    journal = kit.home / "var" / "updates" / "journal.json"
    updater = subprocess.Popen(
        [kit.python(), "-m", "kit", "update", "apply", "--now", str(bundles["broken"])],
        env=kit.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=kit.home,
    )

    def reached():
        try:
            return json.loads(journal.read_text()).get("step") == step
        except (OSError, ValueError):
            return updater.poll() is not None

    wait_for(reached, 120, 0.02, what=f"the update at step {step}")
    time.sleep(random.uniform(0, 1.0 if step != "trial" else 8.0))
    updater.kill()
    updater.wait()
    # The running supervisor notices the dead updater and restarts; its prepare step undoes the update.
    wait_for(lambda: not journal.exists(), 120, 0.5, what="the interrupted update undone")
    kit.wait_online()
    assert kit.current() == was and not (kit.releases / "0.1.3").exists()
    assert kit.service_pythons() == {str(kit.releases / was)}
    after = kit.events()
    assert after[: len(before)] == before
    assert kit.status()["hold"] is None
    assert kit.fieldkit("ledger", "verify").returncode == 0
