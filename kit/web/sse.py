"""Live updates: the web process relays the kit's bus messages to browsers as server-sent events.

One bus subscription (``fieldkit/<kit>/#``) feeds a queue per open stream, bounded in items and in bytes
(a frozen door tablet holds a few camera frames, not 500 of them); a message is serialised once for every
stream that sees it whole. The newest message on each known ``health``/``state``/``status`` topic is kept,
so a page that opens (or reconnects) starts from the current picture instead of waiting for the next
change. Only known topics are kept (the services' health, the kit's status, each feature's state), so
invented topic names cannot grow that table. Each stream carries only what its role may read
(``kit/web/stream_roles.py``). Each open stream holds one of waitress's threads; a stream whose client hung
up gives it back within GONE_CHECK_SECONDS, and at once when a new stream would otherwise be refused.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from flask import Blueprint, Response, current_app, request, stream_with_context

from kit import topics
from kit.bus import Bus, topic_matches
from kit.web.auth import current_role
from kit.web.context import kit
from kit.web.stream_roles import StreamRoles

log = logging.getLogger("fieldkit.web.sse")
bp = Blueprint("sse", __name__)

HEARTBEAT_SECONDS = 15
QUEUE_SIZE = 500  # news waiting for one stream, at most; the oldest go first
# and at most this many bytes: 500 camera preview frames (~5 KB each simulated, more from a real camera) are MBs
QUEUE_BYTES = 256 * 1024
_STATEFUL = ("health", "state", "status")
MAX_PATTERNS = 16
MAX_PATTERN_CHARS = 128
SPARE_THREADS = 8
GONE_CHECK_SECONDS = 2.0  # how often an idle stream asks waitress whether its client hung up
_CLOSED = object()  # put in every stream's queue by EventHub.close(): the stream ends at once


def known_stateful_topics(features: list[str]) -> frozenset[str]:
    """The topics whose newest message the hub keeps: services' health, the status, features' state."""
    names = set(topics.SERVICES) | set(features)
    return frozenset({f"{n}/health" for n in names} | {f"{f}/state" for f in features} | {"status"})


@dataclass(frozen=True)
class News:
    topic: str  # relative to fieldkit/<kit>/
    payload: dict
    text: str  # the whole message as one server-sent event, made once for every stream that sees it all


class ClientQueue:
    """One stream's waiting news, bounded by QUEUE_SIZE items and QUEUE_BYTES; when full the oldest are dropped
    (a stalled browser keeps the newest news). ``get`` answers None when nothing came within ``timeout``."""

    def __init__(self, gone: Callable[[], bool] = lambda: False):
        self.gone = gone  # True once the stream's client has hung up (waitress noticed, the stream not yet)
        self._items: deque = deque()
        self._bytes = 0
        self._ready = threading.Condition(threading.Lock())

    def put(self, item, size: int = 0) -> None:
        with self._ready:
            self._items.append((item, size))
            self._bytes += size
            while len(self._items) > QUEUE_SIZE or (self._bytes > QUEUE_BYTES and len(self._items) > 1):
                self._bytes -= self._items.popleft()[1]
            self._ready.notify()

    def get(self, timeout: float):
        with self._ready:
            if not self._items:
                self._ready.wait(timeout)
            if not self._items:
                return None
            item, size = self._items.popleft()
            self._bytes -= size
            return item

    def pending(self) -> tuple[int, int]:
        """(items, bytes) waiting."""
        with self._ready:
            return len(self._items), self._bytes


class EventHub:
    def __init__(self, bus: Bus, kit_id: str, known: frozenset[str] | None = None):
        self.prefix = f"fieldkit/{kit_id}/"
        self.known = known if known is not None else known_stateful_topics([])
        self._clients: set[ClientQueue] = set()
        self._latest: dict[str, dict] = {}
        self._refused_kinds: set[str] = set()
        self._lock = threading.Lock()
        self.closed = threading.Event()
        bus.subscribe(f"fieldkit/{kit_id}/#", self._on_message)

    def close(self) -> None:
        """End every open stream now (the web service is stopping), and refuse to open more."""
        self.closed.set()
        with self._lock:
            clients = list(self._clients)
        for q in clients:
            q.put(_CLOSED)

    def _keep_latest(self, rel: str, payload: dict) -> None:
        kind = rel.rsplit("/", 1)[-1]
        if kind not in _STATEFUL:
            return
        with self._lock:
            if rel in self.known:
                self._latest[rel] = payload
                return
            first = kind not in self._refused_kinds
            self._refused_kinds.add(kind)
        if first:  # once per kind: a flood of invented names must not flood the log either
            log.warning("event=stream_state_refused topic=%s reason=not a known %s topic; not kept "
                        "(further ones are not logged)", rel[:200], kind)

    def _on_message(self, topic: str, payload: dict) -> None:
        rel = topic[len(self.prefix):]
        self._keep_latest(rel, payload)
        with self._lock:
            clients = list(self._clients)
        if not clients:
            return
        item = News(rel, payload, _format({"topic": rel, "payload": payload}))
        for q in clients:
            q.put(item, len(item.text))

    def open_streams(self) -> int:
        with self._lock:
            return len(self._clients)

    def latest(self) -> dict[str, dict]:
        with self._lock:
            return dict(self._latest)

    def open(self, limit: int, gone: Callable[[], bool] = lambda: False) -> ClientQueue | None:
        """A new stream's queue, or None when stopping or ``limit`` streams are open (checked and counted at once,
        so a burst of reconnecting screens cannot all pass the check before any of them is counted). Streams whose
        client already hung up do not count: a reloaded page is not refused because of its own old stream."""
        with self._lock:
            if self.closed.is_set():
                return None
            if len(self._clients) >= limit:
                for stale in [c for c in self._clients if c.gone()]:
                    self._clients.discard(stale)
                    stale.put(_CLOSED)  # its thread ends now, not at its next check
            if len(self._clients) >= limit:
                return None
            q = ClientQueue(gone)
            self._clients.add(q)
            return q

    def release(self, q: ClientQueue) -> None:
        with self._lock:
            self._clients.discard(q)

    def stream(self, q: ClientQueue, patterns: list[str], role: str, roles: StreamRoles,
               gone: Callable[[], bool] = lambda: False) -> Iterator[str]:
        """Messages matching ``patterns`` that ``role`` may read, as server-sent events, until closed or ``gone()``."""
        with self._lock:
            snapshot = dict(self._latest)

        def visible(rel: str, payload: dict, text: str = "") -> str | None:
            if not _wanted(rel, patterns):
                return None
            shown = roles.view(role, rel, payload)
            if shown is None:
                return None
            return text if shown is payload and text else _format({"topic": rel, "payload": shown})

        try:
            yield ": connected\n\nretry: 2000\n\n"
            for rel, payload in snapshot.items():
                if (out := visible(rel, payload)) is not None:
                    yield out
            last = time.monotonic()
            while not self.closed.is_set() and not gone():
                # close() wakes this with _CLOSED; the short wait only notices a closed tab whose role sees no
                # traffic, so its thread is free again within seconds, not at the next heartbeat
                wait = HEARTBEAT_SECONDS - (time.monotonic() - last)
                item = q.get(timeout=max(0.05, min(wait, GONE_CHECK_SECONDS)))
                if item is None:
                    if wait <= GONE_CHECK_SECONDS:
                        last = time.monotonic()
                        yield ": keepalive\n\n"
                    continue
                if item is _CLOSED:
                    break
                if (out := visible(item.topic, item.payload, item.text)) is not None:
                    last = time.monotonic()
                    yield out
        finally:
            self.release(q)


def _wanted(rel: str, patterns: list[str]) -> bool:
    if rel.endswith("/preview") and not any(p.endswith("preview") for p in patterns):
        return False
    return any(topic_matches(p, rel) for p in patterns)


def parse_patterns(raw: str) -> list[str]:
    """The ``topics`` query: comma-separated MQTT patterns; ValueError says what is wrong."""
    patterns = [p for p in raw.split(",") if p] or ["#"]
    if len(patterns) > MAX_PATTERNS:
        raise ValueError(f"at most {MAX_PATTERNS} topic patterns per stream")
    for p in patterns:
        levels = p.split("/")
        if len(p) > MAX_PATTERN_CHARS:
            raise ValueError(f"a topic pattern is at most {MAX_PATTERN_CHARS} characters")
        if any(("#" in lv and lv != "#") or ("+" in lv and lv != "+") for lv in levels) or "#" in levels[:-1]:
            raise ValueError(f"{p[:40]!r} is not an MQTT topic pattern")
    return patterns


def _format(item: dict) -> str:
    return "data: " + json.dumps(item, separators=(",", ":"), default=str) + "\n\n"


@bp.route("/events")
def events():
    role = current_role()
    if role is None:
        return Response("sign in first\n", status=401, mimetype="text/plain")
    try:
        patterns = parse_patterns(request.args.get("topics", "#"))
    except ValueError as e:
        log.warning("event=stream_refused client=%s reason=%r", request.remote_addr, str(e))
        return Response(f"{e}\n", status=400, mimetype="text/plain")
    hub: EventHub = kit().bus.hub  # set by the app factory
    # each open stream holds one of waitress's threads: keep some for every other request
    # waitress answers client_disconnected only with channel_request_lookahead > 0 (kit/web/service.py sets it)
    gone = request.environ.get("waitress.client_disconnected") or (lambda: False)
    q = hub.open(max(1, kit().config["web.threads"] - SPARE_THREADS), gone)
    if q is None and hub.closed.is_set():
        return Response("the kit is stopping\n", status=503, mimetype="text/plain", headers={"Retry-After": "5"})
    if q is None:
        log.warning("event=stream_refused client=%s reason=too many live streams open", request.remote_addr)
        return Response("too many live streams are open; close a tab\n", status=503, mimetype="text/plain",
                        headers={"Retry-After": "10"})
    # The stream keeps this thread for as long as the page is open and reads no database: its SQLite
    # connection goes back now for other requests, not when the stream ends.
    kit().db.release()
    roles: StreamRoles = current_app.extensions["fieldkit_stream_roles"]
    response = Response(stream_with_context(hub.stream(q, patterns, role, roles, gone)),
                        mimetype="text/event-stream")
    response.call_on_close(lambda: hub.release(q))  # also when the body was never started
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response
