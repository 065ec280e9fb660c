"""`fieldkit up` and its broker: a demo is its own kit, the broker drops huge bodies, a dead broker comes back.

Real processes throughout: `fieldkit init`, `fieldkit up --simulate`, the Mosquitto the supervisor
starts, paho clients. The test broker (`mosquitto` fixture) stands in for a machine's shared one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from kit.testing import free_port, port_open, stop_process_group, wait_for

SERVICES = ["web", "status", "cues"]


def _client(port: int, on_message=None) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{os.getpid()}-{time.monotonic_ns()}")
    if on_message:
        c.on_message = on_message
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


class Up:
    """`fieldkit init` + `fieldkit up --simulate` in a FIELDKIT_HOME of its own, as `make demo` runs it."""

    def __init__(self, tmp_path: Path, kit_id: str = "demo", extra_env: dict | None = None, args: tuple = ()):
        self.home = tmp_path / "home"
        self.web_port = free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith("FIELDKIT_")}
        self.env = {**base, "FIELDKIT_HOME": str(self.home), "FIELDKIT_WEB_PORT": str(self.web_port),
                    "FIELDKIT_WEB_HOST": "127.0.0.1", **(extra_env or {})}
        init = self.fieldkit("init", "--kit-id", kit_id, "--site", "demo")
        assert init.returncode == 0, init.stderr
        self.lead_pin = next(line.split()[1] for line in init.stdout.splitlines() if line.split()[:1] == ["lead"])
        self.log_path = tmp_path / "up.log"
        cmd = [sys.executable, "-m", "kit", "up", "--simulate", *args] + [a for s in SERVICES for a in ("--only", s)]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self.log_path.open("w"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.url = f"http://127.0.0.1:{self.web_port}/"

    def fieldkit(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "kit", *args], env=self.env, capture_output=True, text=True,
                              timeout=60)

    def log(self) -> str:
        return self.log_path.read_text()

    def health(self) -> dict | None:
        try:
            with urllib.request.urlopen(self.url + "api/v1/health", timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            return None

    def healthy(self) -> bool:
        h = self.health()
        return bool(h and h["broker"] and all(h["services"].get(s) == "ok" for s in SERVICES if s != "status")
                    and h["services"].get("status") == "ok")

    def wait_healthy(self, timeout: float = 45) -> None:
        try:
            wait_for(self.healthy, timeout, 0.1, what="every service healthy")
        except TimeoutError:
            raise AssertionError(f"not healthy: {self.health()}\n{self.log()[-3000:]}") from None

    def broker(self) -> dict:
        return json.loads((self.home / "var" / "broker.json").read_text())

    def stop(self) -> None:
        stop_process_group(self.proc)


def _dashboard(kit: Up) -> str:
    """The lead's dashboard as a browser gets it: sign in with the lead PIN (CSRF token and cookie), then /."""
    import http.cookiejar
    import re
    import urllib.parse

    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = opener.open(kit.url + "login", timeout=5).read().decode()
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"pin": kit.lead_pin, "csrf_token": token}).encode()
    opener.open(kit.url + "login", data=form, timeout=5).read()
    return opener.open(kit.url, timeout=5).read().decode()


@pytest.fixture
def up(tmp_path):
    started: list[Up] = []

    def start(**kw) -> Up:
        u = Up(tmp_path / f"u{len(started)}", **kw)
        started.append(u)
        return u

    yield start
    for u in started:
        u.stop()


def test_a_demo_runs_its_own_broker_and_another_kits_retained_offline_does_not_matter(up, mosquitto):
    # The machine's shared broker (the test broker here) holds a retained `offline` for every service of
    # another kit named demo, as `make demo` found it on port 1883.
    shared = _client(mosquitto.port)
    for name in SERVICES:
        shared.publish(f"fieldkit/demo/{name}/health", json.dumps({"state": "offline"}), qos=1, retain=True).wait_for_publish(5)
    kit = up()
    kit.wait_healthy()
    rec = kit.broker()
    assert rec["private"] is True and rec["port"] not in (1883, mosquitto.port)
    assert f"MQTT: a private broker on 127.0.0.1:{rec['port']}" in kit.log()
    # A CLI command that uses the bus finds the private broker through the recorded port.
    answer = kit.fieldkit("cues", "stop-all")
    assert answer.returncode == 0, answer.stderr
    # Nothing of this kit reached the shared broker: its retained messages are still the other kit's.
    seen: dict[str, bytes] = {}
    probe = _client(mosquitto.port, lambda _c, _u, m: seen.__setitem__(m.topic, m.payload))
    probe.subscribe("fieldkit/demo/#")
    wait_for(lambda: len(seen) >= len(SERVICES), 5, what="the shared broker's retained messages")
    time.sleep(0.5)
    assert set(seen) == {f"fieldkit/demo/{n}/health" for n in SERVICES}
    assert all(json.loads(p) == {"state": "offline"} for p in seen.values())
    kit.stop()
    assert not (kit.home / "var" / "broker.json").exists(), "the record goes with the broker"
    for c in (shared, probe):
        c.loop_stop()
        c.disconnect()


def test_on_a_shared_broker_another_kit_with_the_same_id_never_turns_our_tiles_red(up, mosquitto):
    kit_id = f"same{mosquitto.port}"
    kit = up(kit_id=kit_id, extra_env={"FIELDKIT_MQTT_PORT": str(mosquitto.port)}, args=("--existing-broker",))
    kit.wait_healthy()
    assert f"MQTT: the existing broker at 127.0.0.1:{mosquitto.port}" in kit.log()
    statuses: list[dict] = []

    def on_status(_c, _u, m):
        statuses.append(json.loads(m.payload))

    other = _client(mosquitto.port, on_status)
    other.subscribe(f"fieldkit/{kit_id}/status")
    # Another kit with our id: a process of it dies (its will, no start id) and a live one says ok.
    other.publish(f"fieldkit/{kit_id}/cues/health",
                  json.dumps({"state": "ok", "pid": 1, "start_id": "0ther-b00t:1:1"}), qos=1).wait_for_publish(5)
    other.publish(f"fieldkit/{kit_id}/cues/health", json.dumps({"state": "offline"}), qos=1, retain=True).wait_for_publish(5)
    other.publish(f"fieldkit/{kit_id}/web/health", json.dumps({"state": "offline"}), qos=1).wait_for_publish(5)
    wait_for(lambda: any("another kit named " + kit_id in " ".join(s.get("reasons", [])) for s in statuses), 10,
             what="the status to name the other kit")
    time.sleep(1)
    h = kit.health()  # the latest raw message on both topics says offline; the tiles keep to our processes
    assert h["services"]["cues"] == "ok" and h["services"]["web"] == "ok", h
    assert statuses[-1]["services"]["cues"] == "ok" and statuses[-1]["services"]["web"] == "ok"
    assert "another kit named" in kit.log()
    assert f"another kit named {kit_id} is on this broker" in _dashboard(kit)
    other.loop_stop()
    other.disconnect()


def test_a_killed_private_broker_is_restarted_and_every_service_comes_back(up):
    kit = up()
    kit.wait_healthy()
    port = kit.broker()["port"]
    broker_pid = int([line for line in kit.log().splitlines() if "event=broker_started" in line][-1]
                     .split("pid=")[1].split()[0])
    os.kill(broker_pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: kit.log().count("event=broker_started") >= 2, 10, what="the broker restarted")
    assert port_open("127.0.0.1", port), "the broker is back on the same port"
    kit.wait_healthy(timeout=30)
    assert time.monotonic() - killed < 30
    assert kit.broker()["port"] == port
