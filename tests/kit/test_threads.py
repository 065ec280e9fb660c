"""No vital thread dies silently: a failing loop is logged, degrades health, and runs again; a loop that keeps
dying, or a dead bus loop, ends the service non-zero so it is restarted."""

import json
import logging
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from kit import threads, topics
from kit.bus import Bus
from kit.testing import wait_for


def test_a_failing_loop_is_logged_marked_and_restarted(caplog):
    registry = threads.Registry()
    runs, stop = [], threading.Event()

    def loop():
        runs.append(time.monotonic())
        if len(runs) <= 2:
            raise RuntimeError("deque mutated during iteration")
        stop.wait()

    caplog.set_level(logging.INFO, logger="fieldkit.threads")
    vital = registry.start("tick", loop, stop, backoff=(0.05, 0.2), healthy_after=0.5)
    wait_for(lambda: len(runs) == 3, 5, what="the third run")
    assert registry.problems() == ["tick failed and was restarted (RuntimeError: deque mutated during iteration)"]
    assert "event=thread_failed thread=tick reason='RuntimeError: deque mutated during iteration'" in caplog.text
    assert "event=thread_restarted thread=tick" in caplog.text
    assert runs[2] - runs[1] >= 0.09
    wait_for(lambda: not registry.problems(), 3, what="healthy again after running well")
    assert vital.thread.is_alive() and registry.dead() == []
    stop.set()
    vital.thread.join(2)
    assert not vital.thread.is_alive() and registry.dead() == []  # asked to stop: finished, not dead


def test_a_loop_that_keeps_dying_is_given_up_and_reported_dead(caplog):
    registry = threads.Registry()

    def loop():
        raise OSError("device gone")

    vital = registry.start("source", loop, backoff=(0.01, 0.02), max_failures=3, window=10)
    vital.thread.join(5)
    assert registry.dead() == ["source"]
    assert registry.problems() == ["source keeps failing (OSError: device gone)"]
    assert "event=thread_given_up thread=source failures=3" in caplog.text


CUES_WITH_A_FLAKY_TICK = textwrap.dedent("""
    # `fieldkit run cues` whose engine tick raises while the test's marker file exists (twice at most),
    # then writes the number of good ticks after the failure so the test sees the loop running again.
    import sys
    from pathlib import Path
    import cues.engine
    from cues.service import run
    from kit.config import load_config
    from kit.service import run_service

    marker, ticks_file = Path(sys.argv[1]), Path(sys.argv[2])
    real_tick, state = cues.engine.Engine.tick, {"failed": 0, "after": 0}

    def flaky_tick(self, *args, **kwargs):
        if marker.exists() and state["failed"] < 2:
            state["failed"] += 1
            raise RuntimeError("deque mutated during iteration")
        if state["failed"]:
            state["after"] += 1
            if state["after"] % 10 == 0:
                ticks_file.write_text(str(state["after"]))
        return real_tick(self, *args, **kwargs)

    cues.engine.Engine.tick = flaky_tick
    sys.exit(run_service("cues", run, load_config()))
""")


@pytest.mark.slow
def test_a_real_cues_service_whose_tick_loop_raises_degrades_and_ticks_again(kit_env, mosquitto, tmp_path):
    marker, ticks = tmp_path / "fail-now", tmp_path / "ticks"
    seen: list[dict] = []
    watcher = Bus("test1", "watcher", port=mosquitto.port, will=False)
    watcher.subscribe(topics.health("test1", "cues"), lambda _t, p: seen.append(p))
    assert watcher.start(wait=5)
    proc = subprocess.Popen([sys.executable, "-c", CUES_WITH_A_FLAKY_TICK, str(marker), str(ticks)],
                            env=kit_env["env"], stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: seen and seen[-1]["state"] == "ok" and seen[-1]["pid"] == proc.pid, 20, what="cues ok")
        marker.write_text("x")
        degraded = wait_for(lambda: next((p for p in seen if p["state"] == "degraded"), None), 10,
                            what="degraded health")
        assert "cues-tick failed and was restarted (RuntimeError: deque mutated during iteration)" in degraded["reason"]
        wait_for(lambda: ticks.exists() and int(ticks.read_text() or 0) >= 20, 10, what="the tick loop running again")
        wait_for(lambda: seen[-1]["state"] == "ok", 20, what="ok again after the loop ran well")
        assert proc.poll() is None and seen[-1]["pid"] == proc.pid  # the same process: restarted in place
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
        watcher.stop()
    assert "event=thread_failed thread=cues-tick reason='RuntimeError: deque mutated during iteration'" in err
    assert "event=thread_restarted thread=cues-tick" in err


BUS_LOOP_KILLER = textwrap.dedent("""
    # A service whose paho network thread is ended by a raw callback (paho lets SystemExit through):
    # the runner must notice, stop pinging the watchdog and exit non-zero.
    import sys
    from kit.config import load_config
    from kit.service import run_service

    def loop(ctx):
        def die(*_):
            raise SystemExit("paho thread ends")
        ctx.bus.client.message_callback_add("fieldkit/test1/probe/cmd/die", die)
        ctx.bus.subscribe("fieldkit/test1/probe/cmd/die", lambda t, p: None)
        ctx.health("ok")
        while ctx.sleep(0.2):
            pass

    sys.exit(run_service("probe", loop, load_config()))
""")


@pytest.mark.slow
def test_a_dead_bus_loop_ends_the_service_and_stops_the_watchdog(kit_env, mosquitto, tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    seen: list[dict] = []
    watcher = Bus("test1", "watcher", port=mosquitto.port, will=False)
    watcher.subscribe(topics.health("test1", "probe"), lambda _t, p: seen.append(p))
    assert watcher.start(wait=5)
    env = {**kit_env["env"], "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"}
    proc = subprocess.Popen([sys.executable, "-c", BUS_LOOP_KILLER], env=env, stderr=subprocess.PIPE, text=True)
    notes: list[str] = []

    def drain():
        try:
            while True:
                notes.append(sock.recv(4096).decode())
        except TimeoutError:
            pass

    try:
        wait_for(lambda: seen and seen[-1]["state"] == "ok", 20, what="probe ok")
        wait_for(lambda: (drain(), "WATCHDOG=1" in notes)[1], 5, what="a watchdog ping while alive")
        watcher.publish("fieldkit/test1/probe/cmd/die", {"x": 1}, qos=1)
        assert proc.wait(15) == 1
        _, err = proc.communicate(timeout=5)
        drain()
        last_words = next(i for i, n in enumerate(notes) if n.startswith("STATUS=degraded"))
        assert "the bus network loop has stopped" in notes[last_words]
        assert "WATCHDOG=1" not in notes[last_words:]
        assert "event=service_unhealthy name=probe reason='the bus network loop has stopped' action=exit" in err
        wait_for(lambda: seen[-1]["state"] == "offline", 40, what="the last will")  # keepalive 15 s x 1.5
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
        watcher.stop()
    assert json.dumps(seen)


def test_a_thread_being_started_is_never_reported_dead():
    """The runner polls dead() while services start threads (a cue sheet reload starts a sensor poller):
    a thread registered but not yet running must not end a healthy service."""
    import threading as _threading

    from kit.threads import Registry

    registry = Registry()
    seen: list[list[str]] = []
    done = _threading.Event()

    def poll() -> None:
        while not done.is_set():
            dead = registry.dead()
            if dead:
                seen.append(dead)

    poller = _threading.Thread(target=poll, daemon=True)
    poller.start()
    for n in range(1000):
        registry.start(f"loop-{n}", lambda: time.sleep(0.001))  # returns by itself: finished, never dead
    done.set()
    poller.join(5)
    assert seen == []
