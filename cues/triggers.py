"""When a trigger may fire its cue: debounce, cooldown, conditions, schedules, counters, battery.

Pure bookkeeping with no I/O: the engine asks and acts. Manual fires (GO, the cue screen, the CLI,
``cues/cmd/fire``) skip all of this, because a lead pressing a button means it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from cues.sheet import Cue, Sheet, Trigger

log = logging.getLogger("fieldkit.cues")
BATTERY_LEVELS = {"ok": 0, "warning": 1, "critical": 2}


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


@dataclass
class Battery:
    level: str = "ok"  # ok, warning, critical
    soc_percent: float | None = None

    @property
    def low(self) -> bool:
        return self.level != "ok"


@dataclass
class TriggerState:
    tz: ZoneInfo
    last_edge: dict[tuple[str, int], float] = field(default_factory=dict)
    last_fired: dict[str, float] = field(default_factory=dict)
    admissions: int = 0
    sales: int = 0
    last_wall: float | None = None
    # A longer gap between ticks is the wall clock being set (a Pi boots with a wrong clock),
    # not time passing: firing every schedule "missed" since 1970 would be a surprise.
    max_gap: float = 120.0

    # -- gates --------------------------------------------------------------------------------
    def debounced(self, cue: Cue, index: int, now: float) -> bool:
        """True when this edge is a bounce of the last accepted one (and must be ignored)."""
        trigger = cue.triggers[index]
        last = self.last_edge.get((cue.name, index))
        if last is not None and now - last < trigger.debounce:
            return True
        self.last_edge[(cue.name, index)] = now
        return False

    def refusal(self, cue: Cue, now: float, wall: float, battery: Battery, policy: str) -> str | None:
        """Why a triggered cue may not fire now, or None when it may."""
        last = self.last_fired.get(cue.name)
        if last is not None and cue.cooldown and now - last < cue.cooldown:
            return f"cooling down ({cue.cooldown - (now - last):.1f} s left)"
        cond = cue.conditions
        if cond.after or cond.before:
            local = datetime.fromtimestamp(wall, self.tz)
            minute = local.hour * 60 + local.minute
            after = _minutes(cond.after) if cond.after else 0
            before = _minutes(cond.before) if cond.before else 24 * 60
            inside = after <= minute < before if after <= before else (minute >= after or minute < before)
            if not inside:
                return f"outside {cond.after or '00:00'}–{cond.before or '24:00'}"
        if cond.battery_above is not None and battery.soc_percent is not None and battery.soc_percent <= cond.battery_above:
            return f"battery {battery.soc_percent:.0f} % is not above {cond.battery_above:.0f} %"
        if cue.power_hungry and battery.low and policy == "skip":
            return "battery low: power-hungry cues are skipped"
        return None

    def fired(self, cue: Cue, now: float) -> None:
        self.last_fired[cue.name] = now

    # -- bus events -----------------------------------------------------------------------------
    def admission_cues(self, sheet: Sheet, payload: dict) -> list[Cue]:
        """Cues an admission fires; rehearsal scans and rejections never count."""
        if payload.get("rehearsal"):
            return []
        colour = payload.get("colour")
        if colour not in ("green", "amber", "red"):
            return []
        if colour != "red":
            self.admissions += 1
        total = payload.get("admitted_total")
        count = total if isinstance(total, int) and not isinstance(total, bool) and total > 0 else self.admissions
        return [c for c in sheet.cues for t in c.triggers
                if t.kind == "admission" and colour in t.colours and (colour == "red" or count % t.every == 0)]

    def sale_cues(self, sheet: Sheet) -> list[Cue]:
        self.sales += 1
        return [c for c in sheet.cues for t in c.triggers if t.kind == "sale" and self.sales % t.every == 0]

    @staticmethod
    def slot_cues(sheet: Sheet, payload: dict) -> list[Cue]:
        """Cues a run-sheet slot moment fires (lead/event/slot): start, ending or end, of any or one slot."""
        when, name = payload.get("when"), payload.get("slot")
        return [c for c in sheet.cues for t in c.triggers
                if t.kind == "slot" and t.when == when and (not t.slot or t.slot == name)]

    @staticmethod
    def drop_cues(sheet: Sheet, payload: dict) -> list[Cue]:
        """Cues a live drop's moment fires (pos/event/drop): started, last_minute, sold_out, ended."""
        when, name = payload.get("when"), payload.get("drop")
        return [c for c in sheet.cues for t in c.triggers
                if t.kind == "drop" and t.when == when and (not t.slot or t.slot == name)]

    @staticmethod
    def pickup_cues(sheet: Sheet, payload: dict) -> list[Cue]:
        """Cues a pickup window opening fires (pos/event/pickup_window)."""
        return [c for c in sheet.cues for t in c.triggers if t.kind == "pickup" and t.when == payload.get("when")]

    @staticmethod
    def battery_cues(sheet: Sheet, level: str) -> list[Cue]:
        rank = BATTERY_LEVELS.get(level, 0)
        return [c for c in sheet.cues for t in c.triggers
                if t.kind == "battery_low" and rank and rank >= BATTERY_LEVELS[t.level]]

    # -- schedules ------------------------------------------------------------------------------
    def due_schedules(self, sheet: Sheet, wall: float) -> list[tuple[Cue, Trigger]]:
        """Time-of-day and every-N-minutes triggers whose moment fell in (last tick, now]."""
        last, self.last_wall = self.last_wall, wall
        if last is None or wall <= last:
            return []
        if wall - last > self.max_gap:
            log.info("event=clock_jump seconds=%.0f schedules=skipped", wall - last)
            return []
        due = []
        for cue in sheet.cues:
            for t in cue.triggers:
                crossed = (self._crossed_time(t.at, last, wall) if t.kind == "time"
                           else self._crossed_period(t.minutes * 60, last, wall) if t.kind == "every" else False)
                if crossed:
                    due.append((cue, t))
        return due

    def _crossed_time(self, hhmm: str, last: float, wall: float) -> bool:
        minutes = _minutes(hhmm)
        for day in {datetime.fromtimestamp(last, self.tz).date(), datetime.fromtimestamp(wall, self.tz).date()}:
            midnight = datetime(day.year, day.month, day.day, tzinfo=self.tz)
            moment = (midnight + timedelta(minutes=minutes)).timestamp()
            if last < moment <= wall:
                return True
        return False

    def _crossed_period(self, period: float, last: float, wall: float) -> bool:
        # Aligned to local midnight, so "every 15 minutes" fires at :00, :15, :30 and :45.
        offset = datetime.fromtimestamp(wall, self.tz).utcoffset() or timedelta()
        shift = offset.total_seconds()
        return math.floor((wall + shift) / period) > math.floor((last + shift) / period)
