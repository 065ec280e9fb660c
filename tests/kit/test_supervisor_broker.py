"""The Mosquitto `fieldkit up` starts refuses huge bodies: a 10 MB publish never reaches a subscriber."""

from __future__ import annotations

import os
import threading
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from kit.config import load_config
from kit.supervisor import MESSAGE_SIZE_LIMIT, Supervisor
from kit.testing import free_port, wait_for


def _client(port: int) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"size-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def test_the_private_broker_drops_a_10_mb_body_and_passes_100_kb(tmp_path, monkeypatch):
    monkeypatch.setenv("FIELDKIT_HOME", str(tmp_path / "home"))
    supervisor = Supervisor(load_config())
    port = free_port()
    supervisor.start_broker("127.0.0.1", port)
    got: dict[str, int] = {}
    marker = threading.Event()

    def on_message(_c, _u, msg):
        got[msg.topic] = len(msg.payload)
        if msg.topic == "t/marker":
            marker.set()

    sub = _client(port)
    sub.on_message = on_message
    sub.subscribe("t/#", qos=1)
    pub = _client(port)
    try:
        wait_for(lambda: sub.is_connected() and pub.is_connected(), 5, what="clients connected")
        wait_for(lambda: (pub.publish("t/probe", b"x", qos=1), "t/probe" in got)[1], 5, interval=0.1,
                 what="subscription active")
        pub.publish("t/huge", b"[" * (10 * 1024 * 1024), qos=1).wait_for_publish(20)
        pub.publish("t/ok", b"x" * (100 * 1024), qos=1).wait_for_publish(5)
        pub.publish("t/marker", b"m", qos=1).wait_for_publish(5)  # in order after the others
        assert marker.wait(10)
        assert got.get("t/ok") == 100 * 1024
        assert "t/huge" not in got, "a 10 MB body reached a subscriber"
        assert pub.is_connected(), "the publisher is not thrown off (message_size_limit drops, it does not disconnect)"
        conf = (tmp_path / "home" / "var" / "mosquitto" / "mosquitto.conf").read_text()
        assert f"message_size_limit {MESSAGE_SIZE_LIMIT}" in conf and MESSAGE_SIZE_LIMIT == 1024 * 1024
    finally:
        for c in (sub, pub):
            c.loop_stop()
            c.disconnect()
        supervisor.stop_all()
