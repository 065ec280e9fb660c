"""Bus: JSON both ways, subscriptions survive a broker restart, the last will says offline."""

import json
import subprocess
import sys
import textwrap

from kit.bus import Bus
from kit.testing import Mosquitto, wait_for


def test_subscriptions_are_renewed_after_the_broker_restarts(tmp_path):
    broker = Mosquitto(workdir=tmp_path).start()
    try:
        sub = Bus("t1", "sub", port=broker.port, will=False)
        pub = Bus("t1", "pub", port=broker.port, will=False)
        got = []
        sub.subscribe("fieldkit/t1/pos/event/#", lambda t, p: got.append((t, p)))
        assert sub.start(wait=5) and pub.start(wait=5)
        wait_for(lambda: (pub.publish("fieldkit/t1/pos/event/sale", {"n": 1}), got)[1], 5, what="first message")
        broker.restart()
        wait_for(lambda: sub.connects >= 2 and pub.connects >= 2, 30, what="both clients reconnected")
        wait_for(lambda: (pub.publish("fieldkit/t1/pos/event/sale", {"n": 2}), any(p["n"] == 2 for _, p in got))[1],
                 10, what="message after restart")
        assert got[0] == ("fieldkit/t1/pos/event/sale", {"n": 1})
        sub.stop()
        pub.stop()
    finally:
        broker.stop()


def test_bad_payloads_are_dropped_without_stopping_other_handlers(mosquitto):
    bus = Bus("t2", "sub", port=mosquitto.port, will=False)
    got = []

    def broken(_t, _p):
        raise ValueError("handler bug")

    bus.subscribe("fieldkit/t2/#", broken)
    bus.subscribe("fieldkit/t2/#", lambda t, p: got.append(p))
    assert bus.start(wait=5)
    bus.client.publish("fieldkit/t2/x", b"\xff\xfe not json")
    bus.publish("fieldkit/t2/x", {"ok": True})
    wait_for(lambda: got, 5, what="the good message")
    assert got == [{"ok": True}]
    bus.stop()


def test_a_crashed_process_leaves_offline_on_its_health_topic(mosquitto):
    crasher = textwrap.dedent(f"""
        import os
        from kit.bus import Bus
        b = Bus("t3", "pos", port={mosquitto.port})
        b.start(wait=5)
        b.publish_health("ok")
        b.client.loop_stop()  # make sure the message is out before dying
        import time; time.sleep(0.5)
        os._exit(9)
    """)
    seen = []
    watcher = Bus("t3", "watcher", port=mosquitto.port, will=False)
    watcher.subscribe("fieldkit/t3/pos/health", lambda t, p: seen.append(p["state"]))
    assert watcher.start(wait=5)
    assert subprocess.run([sys.executable, "-c", crasher], timeout=30).returncode == 9
    wait_for(lambda: "offline" in seen, 40, what="last will")  # keepalive 15 s × 1.5
    assert seen[-1] == "offline"
    watcher.stop()


def test_request_gets_the_answer_with_the_same_id(mosquitto):
    server = Bus("t4", "cues", port=mosquitto.port, will=False)
    client = Bus("t4", "cli", port=mosquitto.port, will=False)

    def answer(_t, p):
        server.publish("fieldkit/t4/cues/event/fired", {"id": p["id"], "fired": p["name"]})

    server.subscribe("fieldkit/t4/cues/cmd/fire", answer)
    assert server.start(wait=5) and client.start(wait=5)
    reply = None
    for _ in range(3):  # the first request can race the server's subscription
        reply = client.request("cues", "fire", {"name": "house"}, timeout=2)
        if reply:
            break
    assert reply and reply["fired"] == "house"
    server.stop()
    client.stop()
    assert json.dumps(reply)
