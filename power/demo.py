"""`make demo`: a past week of battery and solar history, so the power chart has a story on day one.

It runs the same simulated world the demo's charger uses, fast, and stores what the power service
would have stored (fine rows for the last day, coarse rows before).
"""

from __future__ import annotations

import time

from drivers.vedirect_sim import World
from kit.db import Database
from power.history import COARSE, FINE


def demo_setup(config, db: Database, days: int = 7, now: float | None = None) -> int:
    now = time.time() if now is None else now
    step = config["power.history_fine_seconds"]
    start = now - days * 86400
    local = time.localtime(start)
    world = World(soc=0.7, load_w=config["power.sim_load_watts"], seed=42,
                  start_hour=local.tm_hour + local.tm_min / 60.0, capacity_ah=config["power.battery_capacity_wh"] / 12.8)
    fine_rows: list[tuple] = []
    coarse: dict[float, list] = {}
    t = start
    while t < now:
        world.step(step)
        t += step
        solar_w = world.solar_w
        battery_w = world.battery_v * world.battery_a
        consumption = max(0.0, solar_w - battery_w)
        hours = (world.soc * 100 - config["power.soc_floor_percent"]) / 100 * config["power.battery_capacity_wh"] \
            / max(consumption, 0.5)
        row = (round(t / step) * step, world.soc * 100, world.battery_v, battery_w, solar_w, consumption, hours)
        if t >= now - config["power.history_fine_hours"] * 3600:
            fine_rows.append(row)
        bucket = (t // config["power.history_coarse_seconds"]) * config["power.history_coarse_seconds"]
        coarse.setdefault(bucket, []).append(row[1:])
    coarse_rows = [(b, *(sum(c) / len(c) for c in zip(*rows, strict=True))) for b, rows in coarse.items()]
    with db.transaction() as conn:
        for table, rows in ((FINE, fine_rows), (COARSE, coarse_rows)):
            conn.executemany(f"INSERT OR REPLACE INTO {table} (t, soc, battery_v, battery_w, solar_w, consumption_w, "
                             "hours_left) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    return len(fine_rows) + len(coarse_rows)
