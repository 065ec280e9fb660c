"""``fieldkit run status``: the kit as a whole, from every service's health.

It keeps the retained ``fieldkit/<kit>/status`` (online / degraded / offline) and shows it on the
status LED. Under ``fieldkit up`` and under systemd alike, this one process owns that verdict.
"""

from __future__ import annotations

import logging
import time

from drivers.status_led import open_status_led
from kit import topics
from kit.service import ServiceContext

log = logging.getLogger("fieldkit.status")
SETTLE_SECONDS = 10  # a service not heard from within this after start counts as down


def overall(states: dict[str, str], expected: list[str]) -> str:
    """online: every expected service ok; offline: the web server (the staff's way in) is down; else degraded."""
    if states.get("web") not in ("ok", "degraded"):
        return "offline"
    if all(states.get(name) == "ok" for name in expected):
        return "online"
    return "degraded"


def run_status(ctx: ServiceContext) -> None:
    from kit.runners import service_names

    expected = [n for n in service_names() if n != "status"]
    states: dict[str, str] = {}
    kit_id = ctx.config.kit_id

    def on_health(topic: str, payload: dict) -> None:
        name = topic.split("/")[2]
        states[name] = str(payload.get("state", "unknown"))

    ctx.bus.subscribe(topics.health(kit_id, "+"), on_health)
    led = open_status_led(ctx.config)
    started = time.monotonic()
    last, seen_connects = None, 0
    try:
        while ctx.sleep(0.5):
            if time.monotonic() - started < SETTLE_SECONDS and len(states) < len(expected):
                continue
            state = overall(states, expected)
            summary = {"state": state, "services": {n: states.get(n, "unknown") for n in expected}}
            if (summary != last or ctx.bus.connects != seen_connects) and ctx.bus.is_connected:
                seen_connects = ctx.bus.connects  # a restarted broker has lost the retained copy
                ctx.bus.publish(topics.status(kit_id), summary, retain=True, qos=1)
                log.info("event=kit_status state=%s services=%s", state, summary["services"])
                last = summary
            led.show(state)
    finally:
        led.close()
