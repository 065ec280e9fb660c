"""Battery and solar history at two resolutions (fine: every 10 s for a day; coarse: 5 min for a month).

Readings are averaged into fine buckets; whenever a coarse bucket is over, it is built from the fine
rows it covers. Only available values count: a stale source leaves a gap, never a repeated value.
"""

from __future__ import annotations

import logging
import math

from kit.db import Database

log = logging.getLogger("fieldkit.power.history")

COLUMNS = ("soc", "battery_v", "battery_w", "solar_w", "consumption_w", "hours_left")
FINE, COARSE = "power_history_fine", "power_history_coarse"


def values_of(snapshot: dict) -> dict[str, float | None]:
    b, s, e = snapshot["battery"], snapshot["solar"], snapshot["estimate"]
    return {"soc": b.get("soc"), "battery_v": b.get("voltage"), "battery_w": b.get("power"),
            "solar_w": s.get("power"), "consumption_w": e.get("consumption_w"), "hours_left": e.get("hours_left")}


class HistoryRecorder:
    def __init__(self, db: Database, fine_seconds: int = 10, coarse_seconds: int = 300,
                 fine_keep_seconds: float = 86400, coarse_keep_seconds: float = 31 * 86400):
        self.db = db
        self.fine_seconds, self.coarse_seconds = fine_seconds, coarse_seconds
        self.fine_keep, self.coarse_keep = fine_keep_seconds, coarse_keep_seconds
        self._bucket: float | None = None
        self._sums: dict[str, list[float]] = {}
        self.rows_written = 0

    @classmethod
    def from_config(cls, db: Database, config) -> HistoryRecorder:
        return cls(db, config["power.history_fine_seconds"], config["power.history_coarse_seconds"],
                   config["power.history_fine_hours"] * 3600, config["power.history_coarse_days"] * 86400)

    def add(self, snapshot: dict, wall: float) -> None:
        bucket = math.floor(wall / self.fine_seconds) * self.fine_seconds
        if self._bucket is not None and bucket != self._bucket:
            self.flush()
        self._bucket = bucket
        for key, value in values_of(snapshot).items():
            if value is not None:
                self._sums.setdefault(key, []).append(float(value))

    def flush(self) -> None:
        if self._bucket is None:
            return
        bucket, sums = self._bucket, self._sums
        self._bucket, self._sums = None, {}
        if not sums:
            return  # nothing was available in this bucket: a gap in the chart
        row = {k: (sum(sums[k]) / len(sums[k]) if k in sums else None) for k in COLUMNS}
        coarse = math.floor(bucket / self.coarse_seconds) * self.coarse_seconds
        with self.db.transaction() as conn:
            conn.execute(f"INSERT OR REPLACE INTO {FINE} (t, {', '.join(COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (bucket, *(row[k] for k in COLUMNS)))
            # The coarse bucket holding this row is rebuilt from its fine rows (cheap: at most 30 rows).
            averages = ", ".join(f"AVG({k})" for k in COLUMNS)
            conn.execute(f"INSERT OR REPLACE INTO {COARSE} (t, {', '.join(COLUMNS)}) "
                         f"SELECT ?, {averages} FROM {FINE} WHERE t >= ? AND t < ?",
                         (coarse, coarse, coarse + self.coarse_seconds))
            conn.execute(f"DELETE FROM {FINE} WHERE t < ?", (bucket - self.fine_keep,))
            conn.execute(f"DELETE FROM {COARSE} WHERE t < ?", (bucket - self.coarse_keep,))
        self.rows_written += 1


def query(db: Database, since: float, now: float, fine_keep_seconds: float = 86400,
          max_points: int = 600) -> dict:
    """Samples since ``since``: fine rows while they reach back that far, coarse ones otherwise."""
    since = max(since, now - 400 * 86400)
    table, resolution = (FINE, "fine") if since >= now - fine_keep_seconds else (COARSE, "coarse")
    step = max(1.0, (now - since) / max_points)
    cols = ", ".join(f"AVG({k}) AS {k}" for k in COLUMNS)
    rows = db.query(f"SELECT MIN(t) AS t, {cols} FROM {table} WHERE t >= ? "
                    f"GROUP BY CAST((t - ?) / ? AS INTEGER) ORDER BY t", (since, since, step))
    samples = [{k: (None if r[k] is None else round(r[k], 3)) for k in ("t", *COLUMNS)} for r in rows]
    return {"since": since, "resolution": resolution, "samples": samples}
