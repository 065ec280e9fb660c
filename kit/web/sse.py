"""Live updates: the web process relays the kit's bus messages to browsers as server-sent events.

One bus subscription (``fieldkit/<kit>/#``) feeds a queue per open stream. The newest message on
every ``health``/``state``/``status`` topic is kept, so a page that opens (or reconnects) starts
from the current picture instead of waiting for the next change.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Iterator

from flask import Blueprint, Response, request, stream_with_context

from kit.bus import Bus, topic_matches
from kit.web.auth import current_role
from kit.web.context import kit

log = logging.getLogger("fieldkit.web.sse")
bp = Blueprint("sse", __name__)

HEARTBEAT_SECONDS = 15
QUEUE_SIZE = 500
_STATEFUL = ("health", "state", "status")


class EventHub:
    def __init__(self, bus: Bus, kit_id: str):
        self.prefix = f"fieldkit/{kit_id}/"
        self._clients: set[queue.Queue] = set()
        self._latest: dict[str, dict] = {}
        self._lock = threading.Lock()
        self.closed = threading.Event()
        bus.subscribe(f"fieldkit/{kit_id}/#", self._on_message)

    def _on_message(self, topic: str, payload: dict) -> None:
        rel = topic[len(self.prefix):]
        item = {"topic": rel, "payload": payload}
        if rel.rsplit("/", 1)[-1] in _STATEFUL:
            with self._lock:
                self._latest[rel] = payload
        with self._lock:
            clients = list(self._clients)
        for q in clients:
            try:
                q.put_nowait(item)
            except queue.Full:  # a stalled browser: drop its oldest news, keep the newest
                try:
                    q.get_nowait()
                    q.put_nowait(item)
                except (queue.Empty, queue.Full):
                    pass

    def latest(self) -> dict[str, dict]:
        with self._lock:
            return dict(self._latest)

    def stream(self, patterns: list[str]) -> Iterator[str]:
        q: queue.Queue = queue.Queue(QUEUE_SIZE)
        with self._lock:
            self._clients.add(q)
            snapshot = dict(self._latest)
        try:
            yield ": connected\n\nretry: 2000\n\n"
            for rel, payload in snapshot.items():
                if _wanted(rel, patterns):
                    yield _format({"topic": rel, "payload": payload})
            last = time.monotonic()
            while not self.closed.is_set():
                try:
                    item = q.get(timeout=1.0)
                except queue.Empty:
                    if time.monotonic() - last > HEARTBEAT_SECONDS:
                        last = time.monotonic()
                        yield ": keepalive\n\n"
                    continue
                if _wanted(item["topic"], patterns):
                    last = time.monotonic()
                    yield _format(item)
        finally:
            with self._lock:
                self._clients.discard(q)


def _wanted(rel: str, patterns: list[str]) -> bool:
    if rel.endswith("/preview") and not any(p.endswith("preview") for p in patterns):
        return False
    return any(topic_matches(p, rel) for p in patterns)


def _format(item: dict) -> str:
    return "data: " + json.dumps(item, separators=(",", ":"), default=str) + "\n\n"


@bp.route("/events")
def events():
    if current_role() is None:
        return Response("sign in first\n", status=401, mimetype="text/plain")
    patterns = [p for p in request.args.get("topics", "#").split(",") if p] or ["#"]
    hub: EventHub = kit().bus.hub  # set by the app factory
    response = Response(stream_with_context(hub.stream(patterns)), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response
