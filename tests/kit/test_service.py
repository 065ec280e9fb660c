"""The service runner as systemd sees it: READY=1, WATCHDOG=1, a broker that is down at start."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from kit.testing import Mosquitto, free_port, wait_for


def test_ready_and_watchdog_reach_the_notify_socket(kit_env, tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    env = {**kit_env["env"], "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"}
    proc = subprocess.Popen([sys.executable, "-m", "kit", "run", "status"], env=env)
    try:
        seen = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not ("READY=1" in seen and seen.count("WATCHDOG=1") >= 2):
            seen.append(sock.recv(4096).decode())
        assert "READY=1" in seen
        assert seen.count("WATCHDOG=1") >= 2, seen  # every second (half of WatchdogSec=2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        rest = []
        sock.settimeout(1)
        try:
            while True:
                rest.append(sock.recv(4096).decode())
        except TimeoutError:
            pass
        assert "STOPPING=1" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()


def test_a_service_started_before_its_broker_connects_when_the_broker_comes(kit_env, tmp_path):
    port = free_port()
    env = {**kit_env["env"], "FIELDKIT_MQTT_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "kit", "run", "status"], env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2)
        assert proc.poll() is None, "a service must not exit because the broker is down"
        broker = Mosquitto(port=port, workdir=tmp_path).start()
        try:
            from kit.bus import Bus

            watcher = Bus("test1", "watcher", port=port, will=False)
            states = []
            watcher.subscribe("fieldkit/test1/status/health", lambda t, p: states.append(p["state"]))
            assert watcher.start(wait=5)
            wait_for(lambda: "ok" in states, 30, what="health ok once the broker is up")
            watcher.stop()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)
            broker.stop()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)


def test_a_service_keeps_its_notify_socket_from_the_programs_it_starts(tmp_path, monkeypatch):
    """systemd only takes sd_notify messages from the unit's main process and logs a warning for each
    one a child sends: after claim() the service still notifies, a child it starts cannot."""
    from kit import sdnotify

    path = str(tmp_path / "notify")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setattr(sdnotify, "_claimed", False)
    try:
        sdnotify.claim()
        assert "NOTIFY_SOCKET" not in os.environ
        assert sdnotify.notify("READY=1") and listener.recv(100) == b"READY=1"
        child = subprocess.run([sys.executable, "-c", "from kit import sdnotify; print(sdnotify.notify('STATUS=child'))"],
                               capture_output=True, text=True, timeout=60)
        assert child.stdout.strip() == "False"
        listener.settimeout(0.3)
        with pytest.raises(TimeoutError):
            listener.recv(100)
    finally:
        listener.close()
        monkeypatch.setattr(sdnotify, "_claimed", False)
        monkeypatch.setattr(sdnotify, "_address", None)
