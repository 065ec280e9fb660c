"""A whole simulated kit takes the hostile set on its bus and keeps working.

Nested JSON 100,000 deep, a 10 MB body, random bytes up to 1 MB, non-JSON, non-object JSON, wrong types
and ``/etc/passwd`` as a document path, on every ``cmd/`` topic, the site topics and the ``event/`` topics
other features listen to; bounded in count and time, only to 127.0.0.1. 60 s later every service is
healthy, none died (same pids) and each still answers a command.
"""

import json
import random
import re
import time

import pytest

from kit.bus import Bus
from kit.testing import wait_for

pytestmark = pytest.mark.slow

COMMANDS = [("cues", c) for c in ("fire", "go", "stop", "stop_all", "next", "back", "reload", "simulate")] + [
    ("sync", "now"), ("pos", "print"), ("pos", "reprint"), ("pos", "check_drop"), ("checkin", "simulate"), ("power", "sim"),
    ("cues", "self_destruct")]  # a command nobody knows: refused as unknown
EVENTS = [("sync", "document"), ("checkin", "scanned"), ("pos", "sale"), ("power", "low"), ("lead", "slot"),
          ("pos", "drop"), ("pos", "pickup_window")]
SERVICES = ("web", "status", "checkin", "pos", "power", "cues", "sync", "lead")


def hostile_bodies() -> list[bytes]:
    rng = random.Random(11)
    wrong_types = {"id": "hostile", "payload": 7, "source": [], "cue": [], "name": {}, "lines": 5, "receipt": {},
                   "soc_percent": "x", "kind": 7, "path": 9, "colour": ["green"], "level": {}, "by": True}
    bodies = [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":"' + b"x" * (10 * 1024 * 1024) + b'"}',
        rng.randbytes(1024), rng.randbytes(100 * 1024), rng.randbytes(1024 * 1024),
        b"not json {", b"[1, 2, 3]", b'"a string"', b"42", b"null", b"",
        json.dumps(wrong_types).encode(),
        json.dumps({"id": "nested", "payload": {"a": [[[[{"b": 1}]]]]}, "lines": [{"text": []}]}).encode(),
    ]
    for kind in ("cues.sheet", "checkin.attendees", "pos.catalogue"):
        bodies.append(json.dumps({"kind": kind, "path": "/etc/passwd", "applied": False, "version": 1}).encode())
    bodies.append(json.dumps({"kind": "pos.catalogue", "path": "../../../../etc/passwd"}).encode())
    return bodies


def _retained(port: int, pattern: str, seconds: float = 2.0) -> dict[str, dict]:
    """Topic -> payload of the retained messages under ``pattern``, read by a fresh client."""
    got: dict[str, dict] = {}
    bus = Bus("hostile", f"reader{time.monotonic_ns()}", port=port, will=False)
    bus.subscribe(pattern, lambda t, p: got.__setitem__(t, p))
    assert bus.start(wait=5)
    time.sleep(seconds)
    bus.stop(clean=False)
    return got


def test_a_running_kit_survives_the_hostile_set(kit_factory, mosquitto):
    kit = kit_factory()  # every service, simulated hardware, demo data
    kit_id = "e2e" + kit.url.rstrip("/").rsplit(":", 1)[1]  # tests/conftest.py names the kit after its web port
    before = {name: p["pid"] for name, p in _health(mosquitto.port, kit_id).items()}
    assert set(before) >= set(SERVICES) and all(before.values())
    site = "e2e"
    topics = [f"fieldkit/{kit_id}/{f}/cmd/{c}" for f, c in COMMANDS]
    topics += [f"fieldkit/{kit_id}/{f}/event/{e}" for f, e in EVENTS] + [f"fieldkit/{kit_id}/power/state"]
    topics += [f"fieldkit/site/{site}/checkin/peer1", f"fieldkit/site/{site}/catchup/peer1",
               f"fieldkit/site/{site}/checkin/{kit_id}", f"fieldkit/site/{site}/catchup/checkin/peer1"]
    bodies = hostile_bodies()
    refusals: list[tuple[str, dict]] = []
    attacker = Bus("hostile", "attacker", host="127.0.0.1", port=mosquitto.port, will=False)
    attacker.subscribe(f"fieldkit/{kit_id}/+/event/+",
                       lambda t, p: p.get("id") == "hostile" and t not in topics and refusals.append((t, p)))
    assert attacker.start(wait=5)
    time.sleep(0.5)
    sent, started = 0, time.monotonic()
    pending = []
    for topic in topics:
        for body in bodies:  # pipelined (paho keeps 20 in flight): a round trip each made this test 80 s
            pending.append(attacker.client.publish(topic, body, qos=1))
            sent += 1
    for info in pending:
        info.wait_for_publish(60)
    publish_seconds = time.monotonic() - started
    # wrong types with an id get an error answer on the feature's event topic
    answered = {"cues/event/done", "pos/event/print", "checkin/event/simulated", "sync/event/now", "power/event/sim"}
    wait_for(lambda: answered <= {t.split("/", 2)[2] for t, _ in refusals}, 15, what=f"refusals on {answered}")
    assert all(p.get("ok") is False and re.search("must be|unknown command", p.get("error", "")) for _, p in refusals), [
        r for r in refusals if not (r[1].get("ok") is False and re.search("must be|unknown command", r[1].get("error", "")))]
    attacker.stop(clean=False)
    print(f"hostile set: {sent} messages on {len(topics)} topics in {publish_seconds:.1f} s")

    time.sleep(35)  # past one watchdog interval (30 s): a service stalled by the flood has missed a beat by now
    after = _health(mosquitto.port, kit_id)
    states = {name: p["state"] for name, p in after.items() if name in SERVICES}
    assert states == {name: "ok" for name in SERVICES}, (states, kit.log_path.read_text()[-3000:])
    log = kit.log_path.read_text()
    trouble = [line for line in log.splitlines() if any(w in line for w in (" ERROR ", "child_exited", "Traceback"))]
    assert {name: p["pid"] for name, p in after.items() if name in before} == before, trouble[-20:]  # none died
    assert "event=child_exited" not in log
    assert "event=bad_payload" in log and "event=bad_command" in log
    assert "event=handler_failed" not in log  # every hostile body was refused before a handler saw it

    # each still answers a command
    client = Bus(kit_id, "checker", port=mosquitto.port, will=False)
    assert client.start(wait=5)
    try:
        state = _retained(mosquitto.port, f"fieldkit/{kit_id}/cues/state", 1.0)[f"fieldkit/{kit_id}/cues/state"]
        cue = state["cues"][0]["name"]
        fired = _ask(client, "cues", "fire", {"cue": cue})
        assert fired["ok"] is True and fired["message"].startswith("fired"), fired
        synced = _ask(client, "sync", "now", {})
        assert "ok" in synced and "state" in synced  # not joined to an HQ here: a clear answer all the same
        printed = _ask(client, "pos", "print", {"source": "hostile-test", "lines": [{"text": "still printing"}]})
        assert printed["status"] in ("queued", "printed"), printed  # a fast printer answers done at once
        scanned: list[dict] = []
        client.subscribe(f"fieldkit/{kit_id}/checkin/event/scanned", lambda _t, p: scanned.append(p))
        time.sleep(0.5)
        shown = _ask(client, "checkin", "simulate", {"payload": "HOSTILE-TEST-CODE"})
        assert shown["ok"] is True, shown
        wait_for(lambda: scanned, 10, what="the scan's verdict")
        assert scanned[-1]["verdict"]
    finally:
        client.stop(clean=False)
    assert kit.fieldkit("ledger", "verify").returncode == 0
    healthy = sum(1 for s in states.values() if s == "ok")
    print(f"messages sent / services healthy: {sent} / {healthy} of {len(SERVICES)}")


def _health(port: int, kit_id: str) -> dict[str, dict]:
    return {t.split("/")[2]: p for t, p in _retained(port, f"fieldkit/{kit_id}/+/health").items()}


def _ask(bus: Bus, feature: str, name: str, payload: dict) -> dict:
    for _ in range(3):  # the first request can race the checker's own subscription
        answer = bus.request(feature, name, dict(payload), timeout=5)
        if answer:
            return answer
    raise AssertionError(f"{feature}/{name} did not answer")

