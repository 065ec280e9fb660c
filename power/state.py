"""The power state: the freshest reading of each source, merged into what a lead reads.

Each source (a charger, a battery monitor, an INA219) reports decoded fields with the monotonic time
they arrived. A source silent for longer than ``stale_seconds`` is unavailable: its values become
``None`` in the snapshot, so nothing stale is ever shown or published as live.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass
class Reading:
    fields: dict
    at: float  # time.monotonic() when it arrived
    port: str = ""


def time_left_hours(soc_percent: float | None, floor_percent: float, capacity_wh: float,
                    consumption_w: float | None) -> float | None:
    """Victron's time-to-go: (SOC - floor)/100 x capacity / discharge power; None when not discharging."""
    if soc_percent is None or consumption_w is None or consumption_w < 0.5:
        return None
    return max(0.0, (soc_percent - floor_percent) / 100.0 * capacity_wh / consumption_w)


class PowerState:
    def __init__(self, stale_seconds: float = 10.0, capacity_wh: float = 1280.0, floor_percent: float = 10.0,
                 smoothing_seconds: float = 60.0):
        self.stale_seconds = stale_seconds
        self.capacity_wh = capacity_wh
        self.floor_percent = floor_percent
        self.smoothing_seconds = smoothing_seconds
        self.readings: dict[str, Reading] = {}  # by kind: charger, monitor
        self._consumption: float | None = None
        self._consumption_at: float | None = None

    def update(self, kind: str, fields: dict, at: float | None = None, port: str = "") -> None:
        at = time.monotonic() if at is None else at
        self.readings[kind] = Reading(fields, at, port)
        self._smooth_consumption(at)

    def fresh(self, kind: str, now: float | None = None) -> dict | None:
        now = time.monotonic() if now is None else now
        r = self.readings.get(kind)
        if r is None or now - r.at > self.stale_seconds:
            return None
        return r.fields

    def age(self, kind: str, now: float) -> float | None:
        r = self.readings.get(kind)
        return None if r is None else round(now - r.at, 1)

    def _raw_consumption(self, now: float) -> float | None:
        """The kit's own draw: what the sun gives minus what goes into the battery."""
        charger, monitor = self.fresh("charger", now), self.fresh("monitor", now)
        battery_w = _battery_w(monitor) if monitor else None
        solar_w = charger.get("solar_w") if charger else None
        if battery_w is not None and solar_w is not None:
            return max(0.0, solar_w - battery_w)
        if battery_w is not None and battery_w < 0 and not charger:
            return -battery_w
        if charger and charger.get("load_a") is not None and charger.get("battery_v"):
            return charger["load_a"] * charger["battery_v"] if charger["load_a"] > 0 else None
        return None

    def _smooth_consumption(self, now: float) -> None:
        raw = self._raw_consumption(now)
        if raw is None:
            return
        if self._consumption is None or self._consumption_at is None:
            self._consumption = raw
        else:
            alpha = 1.0 - math.exp(-max(0.0, now - self._consumption_at) / self.smoothing_seconds)
            self._consumption += alpha * (raw - self._consumption)
        self._consumption_at = now

    def snapshot(self, now: float | None = None, wall: float | None = None) -> dict:
        now = time.monotonic() if now is None else now
        charger, monitor = self.fresh("charger", now), self.fresh("monitor", now)
        battery_src = monitor or charger
        battery: dict = {"available": battery_src is not None, "source": "monitor" if monitor else
                         ("charger" if charger else None)}
        if battery_src:
            volts, amps = battery_src.get("battery_v"), battery_src.get("battery_a")
            battery.update(voltage=volts, current=amps if monitor else None,
                           power=_battery_w(monitor) if monitor else None,
                           soc=monitor.get("soc_percent") if monitor else None,
                           device_time_to_go_min=monitor.get("ttg_minutes") if monitor else None,
                           age_s=self.age("monitor" if monitor else "charger", now))
        else:
            battery.update(voltage=None, current=None, power=None, soc=None, device_time_to_go_min=None,
                           age_s=self.age("monitor", now))
        solar: dict = {"available": charger is not None, "age_s": self.age("charger", now)}
        names = {"solar_v": "voltage", "solar_w": "power", "yield_today_kwh": "yield_today_kwh",
                 "charge_state": "charge_state", "error": "error", "error_code": "error_code", "mppt": "mppt"}
        solar.update({name: (charger.get(key) if charger else None) for key, name in names.items()})
        consumption = self._consumption if (charger or monitor) else None
        load = {
            "available": charger is not None or consumption is not None,
            "output_on": charger.get("load_on") if charger else None,
            "current": charger.get("load_a") if charger else None,
            "consumption_w": None if consumption is None else round(consumption, 1),
        }
        hours = time_left_hours(battery.get("soc"), self.floor_percent, self.capacity_wh, consumption)
        return {
            "battery": battery,
            "solar": solar,
            "load": load,
            "estimate": {"hours_left": None if hours is None else round(hours, 1),
                         "consumption_w": load["consumption_w"]},
            "available": battery_src is not None,
            "time": round(time.time() if wall is None else wall, 3),
        }


def _battery_w(monitor: dict) -> float | None:
    if monitor.get("battery_w") is not None:
        return float(monitor["battery_w"])
    if monitor.get("battery_v") is not None and monitor.get("battery_a") is not None:
        return monitor["battery_v"] * monitor["battery_a"]
    return None
