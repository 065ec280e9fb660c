"""Low-power decisions: a warning from the state of charge, a shutdown from the voltage floor.

A LiFePO4 battery's voltage is flat for most of its charge, so the warning uses the coulomb-counted
state of charge (voltage only when no SOC is known); the hard floor is the voltage. Neither acts on
one reading: each looks at the median of its recent readings. The shutdown also needs the floor held
for ``hold_seconds``, and a pending shutdown is called off only once the voltage is clearly back
(hysteresis), so readings dancing around the floor neither trigger nor cancel it on their own.
Unavailable data (a stale source) never triggers anything.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

OK, WARNING, CRITICAL = "ok", "warning", "critical"


@dataclass(frozen=True)
class LowPowerSettings:
    warning_soc: float = 25.0
    warning_volts: float = 12.4
    warning_hysteresis: float = 5.0
    critical_volts: float = 11.6
    critical_hysteresis: float = 0.3
    hold_seconds: float = 20.0
    median_of: int = 5

    @classmethod
    def from_config(cls, config) -> LowPowerSettings:
        return cls(config["power.warning_soc_percent"], config["power.warning_volts"],
                   config["power.warning_hysteresis_percent"], config["power.critical_volts"],
                   config["power.critical_hysteresis_volts"], config["power.hold_seconds"])


@dataclass(frozen=True)
class Transition:
    level: str  # ok, warning or critical (critical means: shut down now)
    previous: str
    soc_percent: float | None
    voltage: float | None
    reason: str


class LowPowerMonitor:
    def __init__(self, settings: LowPowerSettings):
        self.s = settings
        self.level = OK
        self._soc: deque[float] = deque(maxlen=settings.median_of)
        self._volts: deque[float] = deque(maxlen=settings.median_of)
        self._window: deque[tuple[float, float]] = deque()  # (time, volts) while a shutdown is pending
        self.pending_since: float | None = None

    def observe(self, now: float, soc: float | None, voltage: float | None) -> Transition | None:
        """Feed one reading (``now`` in seconds, any monotonic clock); a Transition when the level changes."""
        if soc is not None:
            self._soc.append(soc)
        if voltage is not None:
            self._volts.append(voltage)
        if self.level == CRITICAL:
            return None  # the shutdown is under way; the service decides whether to retry
        if voltage is not None and self._check_floor(now, voltage):
            return self._move(CRITICAL, f"battery below {self.s.critical_volts} V for {self.s.hold_seconds:g} s")
        return self._check_warning()

    def _check_floor(self, now: float, voltage: float) -> bool:
        if self.pending_since is None:
            if voltage > self.s.critical_volts:
                return False
            self.pending_since = now
            self._window.clear()
        if voltage >= self.s.critical_volts + self.s.critical_hysteresis:
            self.pending_since = None
            self._window.clear()
            return False
        self._window.append((now, voltage))
        while self._window and self._window[0][0] < now - self.s.hold_seconds:
            self._window.popleft()
        if now - self.pending_since < self.s.hold_seconds:
            return False
        return statistics.median(v for _, v in self._window) <= self.s.critical_volts

    def _check_warning(self) -> Transition | None:
        if self._soc:
            value, limit, back = statistics.median(self._soc), self.s.warning_soc, self.s.warning_hysteresis
            unit = "%"
        elif self._volts:
            # without a coulomb counter, a tenth of a volt stands in for the hysteresis
            value, limit, back, unit = statistics.median(self._volts), self.s.warning_volts, 0.1, " V"
        else:
            return None
        if self.level == OK and value <= limit:
            return self._move(WARNING, f"battery at {value:g}{unit}, warning below {limit:g}{unit}")
        if self.level == WARNING and value >= limit + back:
            return self._move(OK, f"battery back at {value:g}{unit}")
        return None

    def _move(self, level: str, reason: str) -> Transition:
        previous, self.level = self.level, level
        soc = statistics.median(self._soc) if self._soc else None
        volts = self._volts[-1] if self._volts else None
        return Transition(level, previous, None if soc is None else round(soc, 1),
                          None if volts is None else round(volts, 3), reason)

    def rearm(self) -> None:
        """After a shutdown command failed: watch again (it fires again once the hold passes)."""
        self.level = WARNING
        self.pending_since = None
        self._window.clear()
