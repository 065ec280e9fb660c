"""Times people write in documents (ticket validity, pickup windows), read in the kit's time zone."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo


def parse_when(value: str, tz: ZoneInfo, end_of_day: bool = False) -> float:
    """ISO dates/times or d.m.Y; a bare day is its start (or, for an end, the next morning 06:00)."""
    v = value.strip()
    for fmt in ("%d.%m.%Y %H:%M", "%d.%m.%Y"):
        try:
            dt = datetime.strptime(v, fmt)
            break
        except ValueError:
            continue
    else:
        try:
            dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{value!r} is not a date (use 2026-11-24 or 2026-11-24T18:00)") from None
    bare_day = len(v) <= 10
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    if bare_day and end_of_day:
        dt = datetime.combine(dt.date() + timedelta(days=1), time(6, 0), tzinfo=dt.tzinfo)
    return dt.timestamp()


def clock_text(at: float, tz: ZoneInfo) -> str:
    """20:30 in the kit's time zone (what a person at the table is told)."""
    return datetime.fromtimestamp(at, tz).strftime("%H:%M")
