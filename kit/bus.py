"""The kit's MQTT bus: a small paho-mqtt 2.x wrapper.

Subscriptions are renewed on every connect, reconnects back off, each process leaves its last will
(``offline``, retained) on its own health topic, payloads are JSON. Handlers run on paho's network
thread: keep them short, and never let one exception stop the others.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from kit import topics

log = logging.getLogger("fieldkit.bus")

Handler = Callable[[str, dict], None]


class BusError(Exception):
    pass


def topic_matches(pattern: str, topic: str) -> bool:
    return mqtt.topic_matches_sub(pattern, topic)


class Bus:
    def __init__(
        self,
        kit_id: str,
        client_name: str,
        host: str = "127.0.0.1",
        port: int = 1883,
        username: str = "",
        password: str = "",
        will: bool = True,
    ):
        self.kit_id = kit_id
        self.client_name = client_name
        self.host, self.port = host, port
        self._subs: list[tuple[str, int, Handler]] = []
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._closing = False
        self.connects = 0
        client_id = f"fieldkit-{kit_id}-{client_name}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        if username:
            self.client.username_pw_set(username, password or None)
        self.health_topic = topics.health(kit_id, client_name)
        if will:
            self.client.will_set(self.health_topic, json.dumps({"state": "offline"}), qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)  # back within ~2 s of a broker restart
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_socket_open = self._on_socket_open

    @classmethod
    def from_config(cls, config, client_name: str, will: bool = True) -> Bus:
        return cls(config.kit_id, client_name, config["mqtt.host"], config["mqtt.port"],
                   config["mqtt.username"], config["mqtt.password"], will=will)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, wait: float = 0.0) -> bool:
        """Connect in the background (a broker that is down now is retried). True if connected in ``wait`` s."""
        self.client.connect_async(self.host, self.port, keepalive=15)
        self.client.loop_start()
        return self._connected.wait(wait) if wait else self._connected.is_set()

    def stop(self, clean: bool = True) -> None:
        """Disconnect. With ``clean`` the health topic says offline (a deliberate stop, not a crash)."""
        self._closing = True
        if clean and self._connected.is_set():
            info = self.client.publish(self.health_topic, json.dumps({"state": "offline"}), qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=2)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    # -- publish / subscribe --------------------------------------------------------------------
    def publish(self, topic: str, payload: dict | str, *, retain: bool = False, qos: int = 0) -> None:
        body = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"), default=str)
        info = self.client.publish(topic, body, qos=qos, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            log.warning("event=publish_failed topic=%s rc=%s", topic, info.rc)

    def subscribe(self, pattern: str, handler: Handler, qos: int = 0) -> None:
        with self._lock:  # same lock as _on_connect: a subscription is never missed in between
            self._subs.append((pattern, qos, handler))
            connected = self._connected.is_set()
        if connected:
            self.client.subscribe(pattern, qos)

    def publish_health(self, state: str = "ok", **detail: Any) -> None:
        from kit.startid import start_id  # tells this run's health from a retained one of another run or kit

        payload = {"state": state, "pid": os.getpid(), "since": time.time(), "start_id": start_id(), **detail}
        self.publish(self.health_topic, payload, retain=True, qos=1)

    def request(self, feature: str, name: str, payload: dict, timeout: float = 5.0) -> dict | None:
        """Send a command and wait for the answer on the feature's event topic with the same id."""
        rid = payload.get("id") or uuid.uuid4().hex
        answer: dict = {}
        got = threading.Event()

        def on_reply(_topic: str, msg: dict) -> None:
            if msg.get("id") == rid:
                answer.update(msg)
                got.set()

        pattern = topics.event(self.kit_id, feature, "+")
        self.subscribe(pattern, on_reply)
        try:
            self.publish(topics.cmd(self.kit_id, feature, name), {**payload, "id": rid}, qos=1)
            return answer if got.wait(timeout) else None
        finally:
            self.unsubscribe_handler(on_reply)

    def unsubscribe_handler(self, handler: Handler) -> None:
        with self._lock:
            self._subs = [s for s in self._subs if s[2] is not handler]

    # -- paho callbacks --------------------------------------------------------------------------
    def _on_socket_open(self, client, userdata, sock) -> None:
        # Without this a small publish right after paho's own PUBACK waits ~40 ms for the broker's delayed
        # ACK (Nagle): a peer's check-in reached door B's screen 48 ms after the scan instead of 3.
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("event=mqtt_refused host=%s port=%s reason=%s", self.host, self.port, reason_code)
            return
        self.connects += 1
        with self._lock:
            patterns = {(p, q) for p, q, _ in self._subs}
            self._connected.set()
        for pattern, qos in patterns:
            client.subscribe(pattern, qos)
        log.info("event=mqtt_connected host=%s port=%s connects=%d", self.host, self.port, self.connects)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._connected.is_set() and not self._closing:
            log.warning("event=mqtt_disconnected reason=%s", reason_code)
        self._connected.clear()

    def _on_message(self, client, userdata, msg) -> None:
        try:
            payload = json.loads(msg.payload.decode("utf-8")) if msg.payload else {}
            if not isinstance(payload, dict):
                payload = {"value": payload}
        except (UnicodeDecodeError, ValueError):
            log.warning("event=bad_payload topic=%s bytes=%d", msg.topic, len(msg.payload))
            return
        with self._lock:
            handlers = [h for p, _, h in self._subs if mqtt.topic_matches_sub(p, msg.topic)]
        for handler in handlers:
            try:
                handler(msg.topic, payload)
            except Exception:
                log.exception("event=handler_failed topic=%s handler=%s", msg.topic, getattr(handler, "__name__", handler))
