"""The kit's MQTT bus: a small paho-mqtt 2.x wrapper.

Subscriptions are renewed on every connect, reconnects back off, each process leaves its last will
(``offline``, retained) on its own health topic, payloads are JSON. Handlers run on paho's network
thread: keep them short, and never let one exception stop the others.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import socket
import sys
import threading
import time
import types
import uuid
from collections.abc import Callable
from itertools import accumulate
from typing import Any


class _Deferred(types.ModuleType):
    """A module imported on first use of one of its attributes.

    paho imports ssl (for TLS) and urllib.request (for proxy discovery, used only with PySocks installed)
    at import time: ~7 MB RSS in every process of the kit, whose MQTT is plain TCP to the local broker.
    Deferred, they load only when something really uses them (TLS configured, an HTTPS call). Not
    importlib's LazyLoader: on Python 3.11 an ``import ssl`` statement touches ``__spec__`` and loads it.
    """

    def __init__(self, name: str, spec) -> None:
        super().__init__(name)
        self.__spec__ = spec
        self._deferred_lock = threading.Lock()

    def __getattr__(self, attr: str):
        return getattr(self._load(), attr)

    def _load(self) -> types.ModuleType:
        with self._deferred_lock:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
            real = importlib.import_module(self.__name__)  # the real module, registered as usual
            if isinstance(real, _Deferred):  # another stand-in of the same module is still registered
                real = real._load()
            self.__dict__.update(real.__dict__)  # who kept this object now reads the real names directly
        return real


def _defer_import(name: str) -> None:
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None:
        return
    module = _Deferred(name, spec)
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)  # `import urllib.request` reads it from the package


for _name in ("ssl", "urllib.request"):
    _defer_import(_name)

import paho.mqtt.client as mqtt  # noqa: E402  (after the deferrals above)
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402


class _PahoPlainSSL(_Deferred):
    """paho's own ``ssl`` name while it has no TLS connection.

    paho evaluates ``except ssl.SSLWantReadError`` whenever a plain socket's read would block, which would
    load ssl in every process after all. Until paho touches anything else of ssl (``tls_set`` does, and
    then the real module's names replace these), those two errors are classes no plain socket raises.
    """

    class SSLWantReadError(OSError):
        pass

    class SSLWantWriteError(OSError):
        pass

    def __init__(self, name: str, spec) -> None:
        super().__init__(name, spec)
        self.SSLWantReadError, self.SSLWantWriteError = _PahoPlainSSL.SSLWantReadError, _PahoPlainSSL.SSLWantWriteError


if isinstance(getattr(mqtt, "ssl", None), _Deferred):
    mqtt.ssl = _PahoPlainSSL("ssl", mqtt.ssl.__spec__)

from kit import threads, topics  # noqa: E402

log = logging.getLogger("fieldkit.bus")

Handler = Callable[[str, dict], None]

# Payload size limits, checked before any parsing: a command is small; events, states and the site
# tree carry batches (a catch-up, a camera preview) and may be larger.
COMMAND_MAX_BYTES = 256 * 1024
MESSAGE_MAX_BYTES = 1024 * 1024
# Deeper JSON than this is refused before json.loads sees it (its C decoder recurses per level).
MAX_DEPTH = 64
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = re.compile(rb"[^\[\]{}]+")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class PayloadRefused(ValueError):
    """A message the bus drops before any handler sees it; the text is the log line's reason."""


def default_max_bytes(pattern: str) -> int:
    """The size limit of a subscription: commands 256 KiB, everything else 1 MiB."""
    return COMMAND_MAX_BYTES if "/cmd/" in pattern else MESSAGE_MAX_BYTES


def decode_payload(raw: bytes, max_bytes: int = MESSAGE_MAX_BYTES, max_depth: int = MAX_DEPTH) -> dict:
    """JSON object from a message body; PayloadRefused for too big, too deep, not UTF-8, not JSON.

    Size and depth are checked without recursion, so a hostile body costs a linear scan at most.
    A JSON value that is not an object arrives as ``{"value": ...}``; an empty body as ``{}``.
    """
    if len(raw) > max_bytes:
        raise PayloadRefused(f"too_large limit={max_bytes}")
    if not raw:
        return {}
    brackets = _NOT_BRACKETS.sub(b"", _STRINGS.sub(b"", raw))
    if brackets and max(accumulate(_STEP[b] for b in brackets)) > max_depth:
        raise PayloadRefused(f"too_deep limit={max_depth}")
    try:
        payload = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise PayloadRefused("not_utf8") from None
    except (ValueError, RecursionError) as e:
        raise PayloadRefused(f"not_json error={str(e)[:80]!r}") from None
    return payload if isinstance(payload, dict) else {"value": payload}


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
        self._subs: list[tuple[str, int, Handler, int]] = []
        self.dropped = 0  # messages refused or whose handler failed: a count for tests and the status page
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._closing = False
        self.connects = 0
        client_id = f"fieldkit-{kit_id}-{client_name}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        # Second line of defence: an exception escaping any callback (ours guard everything, but
        # message_callback_add users call paho directly) is logged by paho instead of ending its thread.
        self.client.suppress_exceptions = True
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
    def loop_alive(self) -> bool:
        """True while paho's network thread runs (loop_start's thread; it ends only on stop or a bug)."""
        thread = getattr(self.client, "_thread", None)
        return thread is not None and thread.is_alive()

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

    def subscribe(self, pattern: str, handler: Handler, qos: int = 0, *, max_bytes: int | None = None) -> None:
        """Call ``handler(topic, payload)`` for matching messages; bodies over ``max_bytes`` are dropped unread
        (default: 256 KiB for ``cmd/`` patterns, 1 MiB otherwise)."""
        limit = max_bytes if max_bytes is not None else default_max_bytes(pattern)
        with self._lock:  # same lock as _on_connect: a subscription is never missed in between
            self._subs.append((pattern, qos, handler, limit))
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
            patterns = {(p, q) for p, q, _, _ in self._subs}
            self._connected.set()
        for pattern, qos in patterns:
            client.subscribe(pattern, qos)
        log.info("event=mqtt_connected host=%s port=%s connects=%d", self.host, self.port, self.connects)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._connected.is_set() and not self._closing:
            log.warning("event=mqtt_disconnected reason=%s", reason_code)
        self._connected.clear()

    def _on_message(self, client, userdata, msg) -> None:
        # Runs on paho's network thread: nothing may escape, whatever the body (RecursionError,
        # MemoryError, a handler's bug), or the whole process is off the bus for good.
        threads.set_owner(self.client_name)  # a thread a handler starts belongs to this bus's feature (groups)
        try:
            self._dispatch(msg.topic, msg.payload)
        except BaseException as e:
            self.dropped += 1
            log.error("event=message_dropped topic=%s reason=%r", str(msg.topic)[:200], f"{type(e).__name__}: {e}"[:200])

    def _dispatch(self, topic: str, raw: bytes) -> None:
        with self._lock:
            matched = [(h, limit) for p, _, h, limit in self._subs if mqtt.topic_matches_sub(p, topic)]
        if not matched:
            return
        limit = max(limit for _, limit in matched)
        try:
            payload = decode_payload(raw, limit)
        except PayloadRefused as e:
            self.dropped += 1
            log.warning("event=bad_payload topic=%s bytes=%d reason=%s", topic[:200], len(raw), e)
            return
        for handler, own_limit in matched:
            name = getattr(handler, "__name__", repr(handler))
            if len(raw) > own_limit:
                log.warning("event=bad_payload topic=%s bytes=%d reason=too_large limit=%d handler=%s",
                            topic[:200], len(raw), own_limit, name)
                continue
            try:
                handler(topic, payload)
            except BaseException as e:  # even SystemExit: it would end paho's thread, not the process
                self.dropped += 1
                log.exception("event=handler_failed topic=%s handler=%s reason=%r", topic[:200], name, str(e)[:200])
