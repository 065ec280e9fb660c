"""The generated telemetry bridge, loaded by a real Mosquitto, forwards power state to HQ's broker and nothing else."""

from __future__ import annotations

import json

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from kit.testing import Mosquitto, wait_for
from sync.bridge import telemetry_bridge_conf


def test_power_state_reaches_hq_and_sales_do_not(config, tmp_path):
    for d in ("hq-broker", "kit-broker"):
        (tmp_path / d).mkdir()
    hq_broker = Mosquitto(workdir=tmp_path / "hq-broker").start()
    cfg = config.with_values(sync__telemetry_host="127.0.0.1", sync__telemetry_port=hq_broker.port,
                             sync__telemetry_tls=False)
    kit_broker = Mosquitto(workdir=tmp_path / "kit-broker", extra_conf=telemetry_bridge_conf(cfg)).start()
    received: list[tuple[str, dict]] = []
    try:
        at_hq = mqtt.Client(CallbackAPIVersion.VERSION2)
        at_hq.on_message = lambda _c, _u, m: received.append((m.topic, json.loads(m.payload)))
        at_hq.connect("127.0.0.1", hq_broker.port)
        at_hq.subscribe("fieldkit/#")
        at_hq.loop_start()
        on_kit = mqtt.Client(CallbackAPIVersion.VERSION2)
        on_kit.connect("127.0.0.1", kit_broker.port)
        on_kit.loop_start()

        def publish_until_seen() -> bool:
            on_kit.publish("fieldkit/test1/pos/event/sale", json.dumps({"receipt": "test1-1"}))
            on_kit.publish("fieldkit/test1/power/state", json.dumps({"soc_percent": 86}))
            return any(t == "fieldkit/test1/power/state" for t, _ in received)

        wait_for(publish_until_seen, timeout=15, interval=0.3, what="power state bridged to HQ")
        assert dict(received)["fieldkit/test1/power/state"] == {"soc_percent": 86}
        assert not any("/pos/" in t for t, _ in received)
        on_kit.loop_stop()
        at_hq.loop_stop()
    finally:
        kit_broker.stop()
        hq_broker.stop()
