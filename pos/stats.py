"""Numbers for the merch screen: sales per hour (the small chart) and the open shift's totals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kit.config import Config
from kit.db import Database


def sales_per_hour(db: Database, config: Config, now: float, hours: int = 12) -> list[dict]:
    """The last ``hours`` local hours: sales count and net takings per hour (refunds subtract)."""
    tz = config.tz
    end = datetime.fromtimestamp(now, tz).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=hours)
    buckets = [{"hour": (start + timedelta(hours=i)).strftime("%H"), "count": 0, "total_cents": 0} for i in range(hours)]
    rows = db.query("SELECT at, kind, total_cents FROM pos_sales WHERE at >= ?",
                    (start.astimezone(UTC).isoformat(timespec="milliseconds"),))
    for r in rows:
        at = datetime.fromisoformat(r["at"]).astimezone(tz)
        i = int((at - start).total_seconds() // 3600)
        if 0 <= i < hours:
            if r["kind"] == "sale":
                buckets[i]["count"] += 1
                buckets[i]["total_cents"] += r["total_cents"]
            else:
                buckets[i]["total_cents"] -= r["total_cents"]
    return buckets


def recent_sales(db: Database, limit: int = 30) -> list[dict]:
    rows = db.query("SELECT id, receipt, kind, at, total_cents, currency, original_id FROM pos_sales ORDER BY n DESC LIMIT ?",
                    (limit,))
    return [dict(r) for r in rows]
