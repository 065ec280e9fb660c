"""Service groups (``service.groups``): several services in one process start, fail, restart and stop like
single services. Real processes, a real Mosquitto; a member's thread is killed for real (SystemExit in
its loop, injected by a sitecustomize on the children's PYTHONPATH), the group process by SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

from kit import topics
from kit.bus import Bus
from kit.config import ConfigError
from kit.runners import parse_groups, process_plan
from kit.testing import free_port, stop_process_group, wait_for

NAMES = ["web", "status", "checkin", "pos", "power", "cues", "sync", "lead"]


class Health:
    """The latest health message of each service of kit test1, as the status service would see them."""

    def __init__(self, port: int, names: list[str]):
        self.latest: dict[str, dict] = {}
        self.seen: dict[str, list[dict]] = {n: [] for n in names}
        self.lock = threading.Lock()
        self.bus = Bus("test1", f"watcher{os.getpid()}", port=port, will=False)
        for name in names:
            self.bus.subscribe(topics.health("test1", name), self._on)
        assert self.bus.start(wait=5)

    def _on(self, topic: str, payload: dict) -> None:
        name = topic.split("/")[2]
        with self.lock:
            self.latest[name] = payload
            self.seen[name].append(payload)

    def state(self, name: str) -> str:
        return self.latest.get(name, {}).get("state", "unknown")

    def all_ok(self, names: list[str], not_pid: int | None = None) -> int | None:
        """The pid every one of ``names`` reports ok from (one process), or None."""
        pids = {self.latest.get(n, {}).get("pid") for n in names}
        if all(self.state(n) == "ok" for n in names) and len(pids) == 1 and not_pid not in pids:
            return pids.pop()
        return None

    def close(self) -> None:
        self.bus.stop(clean=False)


def test_the_groups_setting_and_the_processes_it_makes(config):
    assert parse_groups([["status", "power"], "cues+sync"], NAMES) == [["status", "power"], ["cues", "sync"]]
    assert parse_groups([["pos"], []], NAMES) == []  # a group of one is no group
    with pytest.raises(ConfigError, match="names 'lights', which is not a service of this kit"):
        parse_groups([["status", "lights"]], NAMES)
    with pytest.raises(ConfigError, match="puts 'power' in two groups"):
        parse_groups([["status", "power"], ["power", "cues"]], NAMES)
    with pytest.raises(ConfigError, match="must be lists of service names"):
        parse_groups([[1, 2]], NAMES)
    # the default: the light services share one process, money, admissions and the web keep their own
    assert process_plan(config) == [["status", "power", "cues", "sync", "lead"], ["web"], ["checkin"], ["pos"]]
    assert process_plan(config, only=["web", "cues", "pos"]) == [["cues"], ["web"], ["pos"]]
    assert process_plan(config.with_values(service__groups=[])) == [[n] for n in NAMES]


def test_each_unit_knows_whether_it_runs(kit_env):
    """What systemd's ExecCondition= asks: the group's unit runs, its members' own units step aside."""

    def check(*args: str, groups: str | None = None) -> subprocess.CompletedProcess:
        env = {**kit_env["env"]} if groups is None else {**kit_env["env"], "FIELDKIT_SERVICE_GROUPS": groups}
        return subprocess.run([sys.executable, "-m", "kit", "run", "--check", *args], env=env,
                              capture_output=True, text=True, timeout=60)

    assert check("--group", "status").returncode == 0
    skipped = check("power")
    assert skipped.returncode == 1
    assert "power runs in the service group status+power+cues+sync+lead (fieldkit-group@status.service)" in skipped.stderr
    assert check("pos").returncode == 0 and check("web").returncode == 0
    assert check("power", groups="").returncode == 0  # no groups: every service in its own unit
    assert check("--group", "status", groups="").returncode == 1
    # a bad setting fails the unit with the reason (255), rather than skipping every unit without a word
    bad = check("pos", groups="pos+lights")
    assert bad.returncode == 255 and "'lights'" in bad.stderr and "Traceback" not in bad.stderr
    shown = subprocess.run([sys.executable, "-m", "kit", "config", "show"], capture_output=True, text=True,
                           env={**kit_env["env"], "FIELDKIT_SERVICE_GROUPS": "status+power,power+cues"}, timeout=60)
    assert shown.returncode == 1 and "puts 'power' in two groups" in shown.stderr


def test_a_group_speaks_for_each_member_to_systemd_and_the_bus(kit_env, mosquitto, tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    health = Health(mosquitto.port, ["status", "power"])
    env = {**kit_env["env"], "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000", "FIELDKIT_SERVICE_GROUPS": "status+power"}
    proc = subprocess.Popen([sys.executable, "-m", "kit", "run", "--group", "status"], env=env,
                            stderr=subprocess.PIPE, text=True)
    notes: list[str] = []

    def drain() -> list[str]:
        try:
            while True:
                notes.append(sock.recv(4096).decode())
        except TimeoutError:
            pass
        return notes

    try:
        pid = wait_for(lambda: health.all_ok(["status", "power"]), 30, what="both members ok")
        assert pid == proc.pid
        # each member on its own health topic, as its own MQTT client: two last wills
        assert health.latest["status"]["start_id"] == health.latest["power"]["start_id"]
        wait_for(lambda: drain().count("WATCHDOG=1") >= 2, 10, what="watchdog pings")
        assert notes.count("READY=1") == 1
        status_lines = [n for n in notes if n.startswith("STATUS=")]
        assert any("status=ok" in n and "power=ok" in n for n in status_lines), status_lines
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        wait_for(lambda: health.state("status") == "offline" and health.state("power") == "offline", 10,
                 what="both members say offline on a clean stop")
        assert "STOPPING=1" in drain()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
        sock.close()
        health.close()


KILL_CUES_TICK = textwrap.dedent("""
    # Test fault: while the marker file exists, the cues engine's tick ends its thread (SystemExit is no
    # Exception: the vital-thread helper does not restart it, so the thread is dead).
    import os, sys
    if "run" in sys.argv:
        marker = os.environ["FIELDKIT_TEST_KILL_TICK"]
        import cues.engine
        real_tick = cues.engine.Engine.tick

        def tick(self, *args, **kwargs):
            if os.path.exists(marker):
                raise SystemExit("test: cues-tick killed")
            return real_tick(self, *args, **kwargs)

        cues.engine.Engine.tick = tick
""")


@pytest.mark.slow
def test_fieldkit_up_restarts_a_group_whose_member_died_or_that_was_killed(kit_env, mosquitto, tmp_path):
    members = ["status", "power", "cues"]
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_CUES_TICK)
    marker = tmp_path / "kill-the-tick"
    env = {**kit_env["env"], "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]),
           "FIELDKIT_TEST_KILL_TICK": str(marker), "FIELDKIT_SERVICE_GROUPS": "+".join(members)}
    log_path = tmp_path / "up.log"
    health = Health(mosquitto.port, members)
    up = subprocess.Popen([sys.executable, "-m", "kit", "up", "--simulate", *[a for m in members for a in ("--only", m)]],
                          env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        first = wait_for(lambda: health.all_ok(members), 40, what="the group healthy")
        assert "event=child_started name=status+power+cues" in log_path.read_text()

        # one member's vital thread dies: that member says why, the whole process ends and is started again
        marker.write_text("x")
        wait_for(lambda: "vital thread(s) stopped: cues-tick" in health.latest["cues"].get("reason", ""), 20,
                 what="cues degraded with the dead thread named")
        marker.unlink()
        second = wait_for(lambda: health.all_ok(members, not_pid=first), 40, what="the restarted group healthy")
        text = log_path.read_text()
        assert "event=service_unhealthy name=cues reason='vital thread(s) stopped: cues-tick' action=exit" in text
        assert "event=child_exited name=status+power+cues code=1" in text
        # the members still alive said goodbye (a clean offline) before the restart, not "ok" to the end
        power = health.seen["power"]
        last_ok_of_first = max(i for i, p in enumerate(power) if p.get("pid") == first)
        first_ok_of_second = min(i for i, p in enumerate(power) if p.get("pid") == second)
        assert any(p["state"] == "offline" for p in power[last_ok_of_first:first_ok_of_second])

        # the group process killed outright: its members' last wills, then fieldkit up starts it again
        os.kill(second, signal.SIGKILL)
        wait_for(lambda: all(health.state(m) == "offline" for m in members), 40, what="three last wills")
        third = wait_for(lambda: health.all_ok(members, not_pid=second), 40, what="healthy after SIGKILL")
        assert "event=child_exited name=status+power+cues code=-9" in log_path.read_text()

        stop_process_group(up)
        assert up.returncode == 0
        wait_for(lambda: all(health.state(m) == "offline" for m in members), 10, what="a clean stop says offline")
        wait_for(lambda: not _alive(third), 10, what="the group process gone")
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
        health.close()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_an_unknown_service_in_a_group_is_refused(kit_env):
    done = subprocess.run([sys.executable, "-m", "kit", "run", "status", "lights"], env=kit_env["env"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "no service called 'lights'" in done.stderr


def test_a_process_on_pythons_own_hashes_still_checks_pins_and_chains_the_ledger(kit_env):
    """`fieldkit run` (not the web) hashes without OpenSSL; scrypt for PINs still loads it when asked."""
    script = textwrap.dedent("""
        import sys
        import kit.__main__
        kit.__main__.builtin_hashes()
        import hashlib
        from kit.config import load_config
        from kit.secrets import Secrets
        assert "_hashlib" not in sys.modules and not hasattr(hashlib, "scrypt")
        print(hashlib.sha256(b"fieldkit").hexdigest())
        print(Secrets(load_config().secrets_dir).role_for_pin(sys.argv[1]))
    """)
    done = subprocess.run([sys.executable, "-c", script, kit_env["pins"]["door"]], env=kit_env["env"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    import hashlib

    assert done.stdout.split() == [hashlib.sha256(b"fieldkit").hexdigest(), "door"]


LIST_MODULES = textwrap.dedent("""
    # Test probe: once the marker file appears, write the top-level packages this process has imported.
    import os, sys, threading, time, json

    def _probe():
        marker = os.environ["FIELDKIT_TEST_MODULES_MARKER"]
        while not os.path.exists(marker):
            time.sleep(0.1)
        argv = open("/proc/self/cmdline", "rb").read().split(b"\\0")
        if b"run" in argv:
            name = "+".join(a.decode() for a in argv[argv.index(b"run") + 1:] if a and not a.startswith(b"-"))
            out = os.path.join(os.path.dirname(marker), name + ".json")
            with open(out + ".tmp", "w") as f:
                json.dump(sorted({m.split(".")[0] for m in list(sys.modules)}), f)
            os.replace(out + ".tmp", out)

    threading.Thread(target=_probe, daemon=True).start()
""")


@pytest.mark.slow
def test_each_process_of_the_kit_loads_only_the_libraries_it_uses(kit_env, mosquitto, tmp_path):
    """The memory target rests on this: SQLAlchemy only on a hub (its mirror store), Pillow and numpy only
    where a camera is drawn or decoded, the CLI's click never in a service (Flask brings its own)."""
    hook, probe = tmp_path / "hook", tmp_path / "probe"
    hook.mkdir()
    probe.mkdir()
    (hook / "sitecustomize.py").write_text(LIST_MODULES)
    marker = probe / "now"
    env = {**kit_env["env"], "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]),
           "FIELDKIT_TEST_MODULES_MARKER": str(marker), "FIELDKIT_WEB_PORT": str(free_port())}
    names = ["web", "status", "power", "cues", "sync", "lead", "pos", "checkin"]
    health = Health(mosquitto.port, names)
    up = subprocess.Popen([sys.executable, "-m", "kit", "up", "--simulate", *[a for m in names for a in ("--only", m)]],
                          env=env, stdout=(tmp_path / "up.log").open("w"), stderr=subprocess.STDOUT,
                          start_new_session=True)
    try:
        wait_for(lambda: all(health.state(n) == "ok" for n in names), 60, what="the kit healthy")
        marker.write_text("x")
        files = [probe / f"{n}.json" for n in ("status+power+cues+sync+lead", "pos", "checkin", "web")]
        wait_for(lambda: all(f.exists() for f in files), 20, what="every process listed")
        loaded = {f.stem: set(json.loads(f.read_text())) for f in files}
        assert not loaded["status+power+cues+sync+lead"] & {"sqlalchemy", "PIL", "numpy", "flask", "click"}
        assert not loaded["pos"] & {"sqlalchemy", "PIL", "numpy", "flask", "click"}
        assert not loaded["checkin"] & {"sqlalchemy", "flask", "click"}  # the simulated camera draws with Pillow
        assert not loaded["web"] & {"sqlalchemy", "PIL", "numpy"}
        assert {"cues", "sync", "lead"} <= loaded["status+power+cues+sync+lead"]  # the probe saw the real thing
    finally:
        stop_process_group(up)
        health.close()
