"""``fieldkit run status``: the kit as a whole, from every service's health.

It keeps the retained ``fieldkit/<kit>/status`` (online / degraded / offline) and shows it on the
status LED. Under ``fieldkit up`` and under systemd alike, this one process owns that verdict.

A retained health message may come from another run, or from another kit that uses the same kit id
on the same broker. Each health payload carries its process's start id (kit/startid.py): once a
service's running process (same machine, same parent) has spoken, nothing from elsewhere overrides it,
and a live voice from elsewhere is reported as "another kit named X is on this broker".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from drivers.status_led import open_status_led
from kit import topics
from kit.service import ServiceContext
from kit.startid import is_sibling, start_id

log = logging.getLogger("fieldkit.status")
SETTLE_SECONDS = 10  # a service not heard from within this after start counts as down
FOREIGN_MEMORY_SECONDS = 120  # "another kit is here" stays shown this long after it was last heard
FOREIGN_MAX = 32  # start ids of other kits' processes remembered at once (a flood cannot grow it)


def overall(states: dict[str, str], expected: list[str]) -> str:
    """online: every expected service ok; offline: the web server (the staff's way in) is down; else degraded."""
    if states.get("web") not in ("ok", "degraded"):
        return "offline"
    if all(states.get(name) == "ok" for name in expected):
        return "online"
    return "degraded"


class HealthBook:
    """The latest health per service, keeping to the process that runs it now."""

    def __init__(self, kit_id: str, ours: Callable[[object], bool] = is_sibling,
                 clock: Callable[[], float] = time.monotonic):
        self.kit_id = kit_id
        self.ours, self.clock = ours, clock
        self.states: dict[str, str] = {}
        self.owners: dict[str, str] = {}  # service -> start id of the process we listen to
        self.foreign: dict[str, float] = {}  # start id of another kit's process -> when last heard
        self.pending_offline: set[str] = set()  # an unsigned "offline" set aside while our process still ran

    def observe(self, name: str, payload: dict) -> bool:
        """Take one health message; False when it was someone else's and was set aside."""
        sid = payload.get("start_id")
        sid = sid if isinstance(sid, str) else None
        state = str(payload.get("state", "unknown"))[:32]
        owner = self.owners.get(name)
        if sid is not None and sid == owner:
            self.pending_offline.discard(name)
        elif sid is not None and self.ours(sid):
            self.owners[name] = sid  # our own process (a restarted one takes over)
            self.pending_offline.discard(name)
        elif owner is not None and self.ours(owner):
            # Our running process owns this topic: the message is another run's or another kit's, or
            # our own process saying goodbye (a clean stop is unsigned): settled once it is gone.
            if sid is None and state == "offline":
                self.pending_offline.add(name)
            elif sid is not None and state != "offline":
                if sid not in self.foreign:
                    log.warning("event=foreign_health topic=%s start_id=%s reason=another kit with id %s on this broker",
                                topics.health(self.kit_id, name), sid, self.kit_id)
                if sid in self.foreign or len(self.foreign) < FOREIGN_MAX:
                    self.foreign[sid] = self.clock()
            return False
        elif sid is not None:
            self.owners[name] = sid  # nobody of ours is running it: show what we have
        self.states[name] = state
        return True

    def settle(self) -> None:
        """An "offline" set aside for a process that has since ended was its own: take it now."""
        for name in list(self.pending_offline):
            owner = self.owners.get(name)
            if owner is None or not self.ours(owner):
                self.states[name] = "offline"
                self.pending_offline.discard(name)

    def reasons(self) -> list[str]:
        now = self.clock()
        self.foreign = {s: t for s, t in self.foreign.items() if now - t < FOREIGN_MEMORY_SECONDS}
        if not self.foreign:
            return []
        return [f"another kit named {self.kit_id} is on this broker: its messages and ours mix; "
                "give one of them another kit id or broker"]


def run_status(ctx: ServiceContext) -> None:
    from kit.runners import service_names

    expected = [n for n in service_names() if n != "status"]
    kit_id = ctx.config.kit_id
    book = HealthBook(kit_id)

    known = set(expected)
    refused: set[str] = set()

    def on_health(topic: str, payload: dict) -> None:
        name = topic.split("/")[2]
        if name not in known:  # an invented service name must not grow the book
            if len(refused) < 64 and name not in refused:
                refused.add(name)
                log.warning("event=health_ignored topic=%s reason=not a service of this kit", topic)
            return
        book.observe(name, payload)

    ctx.bus.subscribe(topics.health(kit_id, "+"), on_health)
    led = open_status_led(ctx.config)
    started = time.monotonic()
    last, seen_connects = None, 0
    try:
        while ctx.sleep(0.5):
            book.settle()
            if time.monotonic() - started < SETTLE_SECONDS and len(book.states) < len(expected):
                continue
            reasons = book.reasons()
            state = overall(book.states, expected)
            if reasons and state == "online":
                state = "degraded"  # commands for this kit id reach both kits
            summary = {"state": state, "services": {n: book.states.get(n, "unknown") for n in expected},
                       "reasons": reasons, "start_id": start_id()}
            if (summary != last or ctx.bus.connects != seen_connects) and ctx.bus.is_connected:
                seen_connects = ctx.bus.connects  # a restarted broker has lost the retained copy
                ctx.bus.publish(topics.status(kit_id), summary, retain=True, qos=1)
                log.info("event=kit_status state=%s services=%s reasons=%s", state, summary["services"], reasons)
                last = summary
            led.show(state)
    finally:
        led.close()
