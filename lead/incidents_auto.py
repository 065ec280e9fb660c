"""Incidents the kit logs by itself, from what the other features say on the bus (never from their code).

- ``checkin/event/double_admission`` (a door learned a ticket is inside twice): one incident for the
  site, whichever kit saw it, with an id made from the ticket and both admissions, so two doors that both
  notice log it once;
- ``pos/event/drop`` with ``when: oversold``: one incident per drop for the site, likewise;
- ``power/event/low`` at ``critical``: this kit's battery, once until the level recovers;
- the door's scanner (``checkin/health``) or the receipt printer (``pos/state``) gone for more than
  ``lead.device_gone_seconds``: "gone" means it worked while the lead service watched and then stopped;
  a kit set up without a scanner or printer is not an incident every evening. One incident per outage:
  none while an earlier one of the same rule on this kit is unresolved.

Bus handlers run on the MQTT network thread: they only queue; the lead service loop writes (``tick``).
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from collections import deque
from datetime import datetime

from kit import topics
from lead.incidents import IncidentError, auto_incident_id, get_incident, log_incident, open_auto_incident

log = logging.getLogger("fieldkit.lead")
QUEUE_MAX = 200  # bus messages waiting for the loop; a flood beyond it is dropped with a log line
BY = "kit"  # who logged it: the kit itself


def _text(value: object, limit: int = 80) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


class DeviceWatch:
    """One device's state over time: when it went away, whether that outage was logged."""

    def __init__(self) -> None:
        self.seen_working = False
        self.gone_since: float | None = None
        self.reason = ""

    def update(self, working: bool, reason: str, now: float) -> None:
        if working:
            self.seen_working, self.gone_since, self.reason = True, None, ""
        elif self.seen_working and self.gone_since is None:
            self.gone_since, self.reason = now, reason
        elif self.gone_since is not None:
            self.reason = reason or self.reason

    def gone_for(self, now: float) -> float:
        return now - self.gone_since if self.gone_since is not None else 0.0


class IncidentWatcher:
    def __init__(self, ctx):
        self.ctx = ctx
        self.kit = ctx.config.kit_id
        self.tz = ctx.config.tz
        self.gone_seconds = float(ctx.config["lead.device_gone_seconds"])
        self._queue: deque[tuple[str, dict]] = deque()
        self._lock = threading.Lock()
        self.dropped = 0
        self.devices = {"scanner_gone": DeviceWatch(), "printer_gone": DeviceWatch()}
        self._battery_critical = False

    def start(self) -> None:
        bus, kit = self.ctx.bus, self.kit
        bus.subscribe(topics.event(kit, *topics.CHECKIN_DOUBLE_ADMISSION), self._queued("double"), qos=1)
        bus.subscribe(topics.event(kit, *topics.POS_DROP), self._queued("drop"), qos=1)
        bus.subscribe(topics.event(kit, *topics.POWER_LOW), self._queued("power"), qos=1)
        bus.subscribe(topics.health(kit, "checkin"), self._queued("scanner"), qos=1)
        bus.subscribe(topics.state(kit, "pos"), self._queued("printer"), qos=1)

    def _queued(self, kind: str):
        def handler(_topic: str, msg: dict) -> None:
            with self._lock:
                if len(self._queue) >= QUEUE_MAX:
                    self.dropped += 1
                    if self.dropped in (1, 100) or self.dropped % 1000 == 0:
                        log.warning("event=incident_watch_dropped kind=%s dropped=%d reason=queue full", kind,
                                    self.dropped)
                    return
                self._queue.append((kind, msg))
        handler.__name__ = f"incident_watch_{kind}"
        return handler

    # -- the loop's part ----------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> list[dict]:
        """Handle what the bus said, then the devices' timers; returns the incidents logged."""
        now = time.monotonic() if now is None else now
        logged = []
        while True:
            with self._lock:
                if not self._queue:
                    break
                kind, msg = self._queue.popleft()
            try:
                made = self._handle(kind, msg if isinstance(msg, dict) else {}, now)
            except sqlite3.Error as e:  # busy database: the next message or timer tries again
                log.warning("event=incident_auto_deferred kind=%s error=%r", kind, str(e))
                made = None
            if made:
                logged.append(made)
        for rule, watch in self.devices.items():
            if watch.gone_for(now) > self.gone_seconds:
                what = "Door scanner" if rule == "scanner_gone" else "Receipt printer"
                minutes = self.gone_seconds / 60
                note = (f"{what} gone for over {minutes:g} min" if minutes >= 1 else
                        f"{what} gone for over {self.gone_seconds:g} s") + (f": {watch.reason}" if watch.reason else "")
                made = self._log(rule, "tech", "medium", note)
                watch.gone_since = None  # this outage is told; the next one starts when it works again
                watch.seen_working = False
                if made:
                    logged.append(made)
        return logged

    def _handle(self, kind: str, msg: dict, now: float) -> dict | None:
        if kind == "double":
            return self._double(msg)
        if kind == "drop":
            if msg.get("when") != "oversold":
                return None
            drop_id, name = _text(msg.get("drop_id"), 64), _text(msg.get("drop"))
            over = msg.get("oversold")
            if not drop_id or isinstance(over, bool) or not isinstance(over, int) or over <= 0:
                log.warning("event=incident_auto_ignored kind=drop reason=malformed oversold message")
                return None
            return self._log("drop_oversold", "payment", "medium",
                             f"Drop {name or drop_id} oversold by {over}: two merch kits sold the last units",
                             incident=auto_incident_id("drop_oversold", drop_id))
        if kind == "power":
            level = msg.get("level")
            if level != "critical":
                if level in ("ok", "warning"):
                    self._battery_critical = False
                return None
            if self._battery_critical:
                return None
            self._battery_critical = True
            soc, volts = _number(msg.get("soc_percent")), _number(msg.get("voltage"))
            detail = ", ".join(x for x in (f"{soc:g} %" if soc is not None else "",
                                           f"{volts:.2f} V" if volts is not None else "") if x)
            return self._log("battery_critical", "tech", "high",
                             f"Battery critical on {self.kit}{f' ({detail})' if detail else ''}: the kit shuts down")
        if kind == "scanner":
            state = msg.get("state")
            if isinstance(state, str):
                self.devices["scanner_gone"].update(state == "ok", _text(msg.get("reason"), 300), now)
            return None
        if kind == "printer":
            printer = msg.get("printer")
            if isinstance(printer, str):
                reason = _text(msg.get("reason"), 300) or ("out of paper" if printer == "no_paper" else printer)
                self.devices["printer_gone"].update(printer == "online", reason, now)
            return None
        return None

    def _double(self, msg: dict) -> dict | None:
        ticket, first, second = _text(msg.get("ticket_key"), 128), msg.get("first"), msg.get("second")
        if not ticket or not isinstance(first, dict) or not isinstance(second, dict):
            log.warning("event=incident_auto_ignored kind=double_admission reason=malformed message")
            return None
        sides = []
        for side in (first, second):
            at = _number(side.get("at"))
            sides.append((_text(side.get("kit"), 32), _text(side.get("door"), 60), at))
        # Both doors see the same two admissions: the same id on both, whichever is "first" on each.
        key = sorted(f"{kit}@{int(at) if at is not None else '?'}" for kit, _door, at in sides)
        where = " and ".join(f"{door or kit or '?'}{' ' + self._hm(at) if at is not None else ''}"
                             for kit, door, at in sides)
        return self._log("double_admission", "access", "medium", f"Ticket admitted twice: {where}",
                         concerns=_concern(ticket), incident=auto_incident_id("double_admission", ticket, *key))

    def _hm(self, at: float) -> str:
        try:
            return datetime.fromtimestamp(at, self.tz).strftime("%H:%M")
        except (OverflowError, OSError, ValueError):
            return ""

    def _log(self, rule: str, category: str, severity: str, note: str, concerns: str = "",
             incident: str | None = None) -> dict | None:
        db, ledger = self.ctx.db, self.ctx.ledger
        with db.transaction() as conn:
            if incident is not None:
                try:
                    get_incident(conn, incident)
                    return None  # the site has it already (another door logged it first)
                except IncidentError:
                    pass
            elif open_auto_incident(conn, self.kit, rule):
                log.info("event=incident_auto_held rule=%s reason=an earlier one is not resolved", rule)
                return None
            made = log_incident(conn, ledger, category=category, severity=severity, note=note, concerns=concerns,
                                by=BY, auto=rule, incident=incident)
        log.warning("event=incident_auto rule=%s incident=%s", rule, made["id"])
        return made


def _concern(ticket: str) -> str:
    """A ticket key fit for the incident's ``concerns`` (the same characters a person may type)."""
    return "".join(c for c in ticket if c.isalnum() or c in "_.:/+=-")[:128]
