"""The bus guard with a real broker: no message body and no handler bug stops paho's network thread."""

import logging
import os
import threading
import time

import pytest

from kit import payloads
from kit.bus import COMMAND_MAX_BYTES, Bus, PayloadRefused, decode_payload
from kit.testing import wait_for

NESTED = b"[" * 100_000 + b"]" * 100_000


@pytest.fixture
def pair(mosquitto):
    sub = Bus("g1", "sub", port=mosquitto.port, will=False)
    pub = Bus("g1", "pub", port=mosquitto.port, will=False)
    yield sub, pub
    sub.stop()
    pub.stop()


def _settle(sub: Bus, pub: Bus, topic: str, got: list) -> None:
    """Wait until the subscription is live (a probe arrives), then forget the probe."""
    wait_for(lambda: (pub.publish(topic, {"payload": "probe"}), got)[1], 5, what="subscription live")
    wait_for(lambda: (time.sleep(0.2), True)[1], 1)
    got.clear()


def test_hostile_bodies_are_refused_and_the_next_good_message_arrives(pair, caplog):
    sub, pub = pair
    got = []
    sub.subscribe("fieldkit/g1/cues/cmd/+", lambda t, p: got.append(p))
    assert sub.start(wait=5) and pub.start(wait=5)
    _settle(sub, pub, "fieldkit/g1/cues/cmd/fire", got)
    hostile = [NESTED, b"{" * 70 + b"}" * 70, b"x" * (COMMAND_MAX_BYTES + 1), os.urandom(200_000),
               b"not json", b'{"a": 1', b"\xff\xfe"]
    caplog.set_level(logging.WARNING, logger="fieldkit.bus")
    for body in hostile:
        pub.client.publish("fieldkit/g1/cues/cmd/fire", body, qos=1).wait_for_publish(5)
    pub.publish("fieldkit/g1/cues/cmd/fire", {"cue": "house"}, qos=1)
    wait_for(lambda: got, 10, what="the good message after the hostile ones")
    assert got == [{"cue": "house"}]
    assert sub.loop_alive
    lines = [r.getMessage() for r in caplog.records if "event=bad_payload" in r.getMessage()]
    assert len(lines) == len(hostile)
    assert all("topic=fieldkit/g1/cues/cmd/fire" in line for line in lines)
    assert any("reason=too_deep" in line for line in lines)
    assert any("reason=too_large" in line for line in lines)


def test_non_object_json_arrives_wrapped(pair):
    sub, pub = pair
    got = []
    sub.subscribe("fieldkit/g1/pos/event/sale", lambda t, p: got.append(p))
    assert sub.start(wait=5) and pub.start(wait=5)
    _settle(sub, pub, "fieldkit/g1/pos/event/sale", got)
    pub.client.publish("fieldkit/g1/pos/event/sale", b"[1, 2]", qos=1)
    wait_for(lambda: got, 5)
    assert got == [{"value": [1, 2]}]


def test_a_handler_raising_anything_does_not_stop_the_loop_or_the_other_handlers(pair, caplog):
    sub, pub = pair
    got = []

    def recursion(_t, _p):
        raise RecursionError("maximum recursion depth exceeded")

    def memory(_t, _p):
        raise MemoryError()

    def leaving(_t, _p):
        raise SystemExit("a handler that calls sys.exit")

    sub.subscribe("fieldkit/g1/#", recursion)
    sub.subscribe("fieldkit/g1/#", memory)
    sub.subscribe("fieldkit/g1/#", leaving)
    sub.subscribe("fieldkit/g1/#", lambda t, p: got.append(p))
    assert sub.start(wait=5) and pub.start(wait=5)
    _settle(sub, pub, "fieldkit/g1/x/event/y", got)
    for n in range(3):
        pub.publish("fieldkit/g1/x/event/y", {"n": n}, qos=1)
    wait_for(lambda: len(got) == 3, 5, what="all three messages")
    assert sub.loop_alive
    text = caplog.text
    assert "event=handler_failed topic=fieldkit/g1/x/event/y handler=recursion" in text
    assert "handler=memory" in text and "handler=leaving" in text


def test_the_size_limit_is_per_subscription(pair):
    sub, pub = pair
    small, large = [], []
    sub.subscribe("fieldkit/g1/a/state", lambda t, p: small.append(len(p["x"])), max_bytes=1000)
    sub.subscribe("fieldkit/g1/a/state", lambda t, p: large.append(len(p["x"])))  # default 1 MiB
    assert sub.start(wait=5) and pub.start(wait=5)
    wait_for(lambda: (pub.publish("fieldkit/g1/a/state", {"x": ""}), large)[1], 5)
    time.sleep(0.2)
    small.clear()
    large.clear()
    pub.publish("fieldkit/g1/a/state", {"x": "y" * 5000}, qos=1)
    pub.publish("fieldkit/g1/a/state", {"x": "y" * 10}, qos=1)
    wait_for(lambda: len(large) == 2, 5)
    assert large == [5000, 10] and small == [10]


def test_a_deeply_nested_body_is_refused_cheaply():
    started = time.perf_counter()
    with pytest.raises(PayloadRefused, match="too_deep"):
        decode_payload(NESTED)
    assert time.perf_counter() - started < 0.5
    # brackets inside strings are text, not nesting
    assert decode_payload(b'{"a": "' + b"[" * 1000 + b'"}') == {"a": "[" * 1000}
    assert decode_payload(b'{"a": [[[1]]]}') == {"a": [[[1]]]}


def test_wrong_types_are_refused_with_a_log_line_and_an_answer(pair, caplog):
    sub, pub = pair
    handled, answers = [], []
    handler = payloads.checked({"payload": payloads.text(4096, required=True)}, lambda t, p: handled.append(p),
                               lambda t, answer: answers.append(answer))
    sub.subscribe("fieldkit/g1/checkin/cmd/simulate", handler)
    assert sub.start(wait=5) and pub.start(wait=5)
    _settle(sub, pub, "fieldkit/g1/checkin/cmd/simulate", handled)
    caplog.clear()
    caplog.set_level(logging.WARNING, logger="fieldkit.bus")
    pub.publish("fieldkit/g1/checkin/cmd/simulate", {"id": "r1", "payload": 7, "source": []}, qos=1)
    pub.publish("fieldkit/g1/checkin/cmd/simulate", {"payload": "T1", "by": True}, qos=1)
    pub.publish("fieldkit/g1/checkin/cmd/simulate", {"id": "r3", "payload": "T2"}, qos=1)
    wait_for(lambda: handled, 5)
    assert handled == [{"id": "r3", "payload": "T2"}]
    assert answers == [{"id": "r1", "ok": False, "status": "rejected", "error": "payload must be text, not int"}]
    assert "event=bad_command topic=fieldkit/g1/checkin/cmd/simulate reason='payload must be text, not int'" in caplog.text
    assert "reason='by must be text, not bool'" in caplog.text


def test_a_document_path_must_be_in_the_download_folder(config, tmp_path):
    folder = payloads.downloads_dir(config) / "pos.catalogue"
    folder.mkdir(parents=True)
    (folder / "000001-cat.csv").write_text("sku,name\n")
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("x")
    (folder / "link.csv").symlink_to(outside)
    good = payloads.downloaded_document(config, {"path": str(folder / "000001-cat.csv")})
    assert good.name == "000001-cat.csv"
    for bad in ("/etc/passwd", str(folder / ".." / ".." / ".." / "kit.db"), str(folder / "link.csv"), "", 7,
                str(payloads.downloads_dir(config))):
        with pytest.raises(ValueError):
            payloads.downloaded_document(config, {"path": bad})


def test_a_flood_does_not_block_the_loop(pair):
    """Thousands of refused messages: the subscriber's keepalive and a later message are unaffected."""
    sub, pub = pair
    got = []
    sub.subscribe("fieldkit/g1/sync/cmd/now", lambda t, p: got.append(p))
    assert sub.start(wait=5) and pub.start(wait=5)
    _settle(sub, pub, "fieldkit/g1/sync/cmd/now", got)
    body = b"[" * 5000
    done = threading.Event()

    def flood():
        for _ in range(2000):
            pub.client.publish("fieldkit/g1/sync/cmd/now", body)
        done.set()

    threading.Thread(target=flood, daemon=True).start()
    assert done.wait(20)
    # the broker may drop queued QoS 0 messages while the subscriber works through the flood: ask again
    wait_for(lambda: (pub.publish("fieldkit/g1/sync/cmd/now", {"id": "after"}, qos=1), got)[1], 15, 0.5,
             what="a message after the flood")
    assert sub.loop_alive and sub.is_connected
