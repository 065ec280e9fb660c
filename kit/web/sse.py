"""Live updates: the web process relays the kit's bus messages to browsers as server-sent events.

One bus subscription (``fieldkit/<kit>/#``) feeds a queue per open stream. The newest message on
known ``health``/``state``/``status`` topic is kept, so a page that opens (or reconnects) starts
from the current picture instead of waiting for the next change. Only known topics are kept (the
services' health, the kit's status, each feature's state), so invented topic names cannot grow that
table. Each stream carries only what its role may read (``kit/web/stream_roles.py``).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Iterator

from flask import Blueprint, Response, current_app, request, stream_with_context

from kit import topics
from kit.bus import Bus, topic_matches
from kit.web.auth import current_role
from kit.web.context import kit
from kit.web.stream_roles import StreamRoles

log = logging.getLogger("fieldkit.web.sse")
bp = Blueprint("sse", __name__)

HEARTBEAT_SECONDS = 15
QUEUE_SIZE = 500
_STATEFUL = ("health", "state", "status")
MAX_PATTERNS = 16
MAX_PATTERN_CHARS = 128
SPARE_THREADS = 8
_CLOSED = object()  # put in every stream's queue by EventHub.close(): the stream ends at once


def known_stateful_topics(features: list[str]) -> frozenset[str]:
    """The topics whose newest message the hub keeps: services' health, the status, features' state."""
    names = set(topics.SERVICES) | set(features)
    return frozenset({f"{n}/health" for n in names} | {f"{f}/state" for f in features} | {"status"})


class EventHub:
    def __init__(self, bus: Bus, kit_id: str, known: frozenset[str] | None = None):
        self.prefix = f"fieldkit/{kit_id}/"
        self.known = known if known is not None else known_stateful_topics([])
        self._clients: set[queue.Queue] = set()
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
            _put_newest(q, _CLOSED)

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
        item = {"topic": rel, "payload": payload}
        self._keep_latest(rel, payload)
        with self._lock:
            clients = list(self._clients)
        for q in clients:
            _put_newest(q, item)

    def open_streams(self) -> int:
        with self._lock:
            return len(self._clients)

    def latest(self) -> dict[str, dict]:
        with self._lock:
            return dict(self._latest)

    def stream(self, patterns: list[str], role: str, roles: StreamRoles) -> Iterator[str]:
        """Messages matching ``patterns`` that ``role`` may read, as server-sent events, until closed."""
        q: queue.Queue = queue.Queue(QUEUE_SIZE)
        with self._lock:
            self._clients.add(q)
            snapshot = dict(self._latest)

        def visible(rel: str, payload: dict) -> str | None:
            if not _wanted(rel, patterns):
                return None
            shown = roles.view(role, rel, payload)
            return None if shown is None else _format({"topic": rel, "payload": shown})

        try:
            yield ": connected\n\nretry: 2000\n\n"
            for rel, payload in snapshot.items():
                if (out := visible(rel, payload)) is not None:
                    yield out
            last = time.monotonic()
            while not self.closed.is_set():
                # close() wakes this with _CLOSED, so the wait can be as long as the heartbeat: an idle stream
                # costs one wake-up per 15 s, not one per second
                try:
                    item = q.get(timeout=max(0.05, HEARTBEAT_SECONDS - (time.monotonic() - last)))
                except queue.Empty:
                    last = time.monotonic()
                    yield ": keepalive\n\n"
                    continue
                if item is _CLOSED:
                    break
                if (out := visible(item["topic"], item["payload"])) is not None:
                    last = time.monotonic()
                    yield out
        finally:
            with self._lock:
                self._clients.discard(q)


def _put_newest(q: queue.Queue, item) -> None:
    try:
        q.put_nowait(item)
    except queue.Full:  # a stalled browser: drop its oldest news, keep the newest
        try:
            q.get_nowait()
            q.put_nowait(item)
        except (queue.Empty, queue.Full):
            pass


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
    if hub.closed.is_set():
        return Response("the kit is stopping\n", status=503, mimetype="text/plain", headers={"Retry-After": "5"})
    # each open stream holds one of waitress's threads: keep some for every other request
    if hub.open_streams() >= max(1, kit().config["web.threads"] - SPARE_THREADS):
        log.warning("event=stream_refused client=%s reason=too many live streams open", request.remote_addr)
        return Response("too many live streams are open; close a tab\n", status=503, mimetype="text/plain",
                        headers={"Retry-After": "10"})
    roles: StreamRoles = current_app.extensions["fieldkit_stream_roles"]
    response = Response(stream_with_context(hub.stream(patterns, role, roles)), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response
