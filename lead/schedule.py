"""The evening as it runs: the planned slots, moved by the leads' Next slot and Running late.

Pure functions, no I/O. Every kit of the site holds the same run-sheet and the same adjustments
(its own and its peers', over the site link) and folds them in one order, (HLC, kit), so every kit
computes the same times whatever order the events arrived in.

- ``next`` (slot k, at T): slot k starts at T; every later slot moves by the same amount; the slot
  before k, if still running at T, ends at T. k may be one past the last slot: the evening ends at T.
- ``late`` (slot k, seconds, extend): every slot after k moves later by the seconds, and slot k too:
  its end when ``extend`` (it is running and overruns), or its start and end (it has not begun).
"""

from __future__ import annotations

from dataclasses import dataclass

from lead.runsheet import RunSheet, Slot

MOMENT_ORDER = {"end": 0, "start": 1, "ending": 2}  # a slot's end comes before the next one's start


@dataclass(frozen=True)
class Adjustment:
    kind: str  # next | late
    slot: int
    value: float  # next: the new start (unix seconds); late: seconds
    hlc: int
    origin: str
    extend: bool = True


@dataclass(frozen=True)
class TimedSlot:
    slot: Slot
    start: float
    end: float

    def as_dict(self) -> dict:
        s = self.slot
        return {"index": s.index, "name": s.name, "stage": s.stage, "host": s.host, "note": s.note,
                "starts_at": round(self.start, 3), "ends_at": round(self.end, 3),
                "planned_start": s.start, "planned_end": s.end}


@dataclass(frozen=True)
class NowNext:
    current: TimedSlot | None
    next: TimedSlot | None
    behind_seconds: float  # how much later than planned the evening now ends
    finished: bool

    def as_dict(self) -> dict:
        return {"current": self.current.as_dict() if self.current else None,
                "next": self.next.as_dict() if self.next else None,
                "behind_seconds": round(self.behind_seconds), "finished": self.finished}


def effective_slots(sheet: RunSheet, adjustments: list[Adjustment]) -> list[TimedSlot]:
    n = len(sheet.slots)
    starts = [s.start for s in sheet.slots]
    ends = [s.end for s in sheet.slots]
    for a in sorted(adjustments, key=lambda a: (a.hlc, a.origin)):
        k = a.slot
        if a.kind == "next" and 0 <= k <= n:
            if k < n:
                delta = a.value - starts[k]
                for j in range(k, n):
                    starts[j] += delta
                    ends[j] += delta
            if k > 0 and ends[k - 1] > a.value:
                ends[k - 1] = max(starts[k - 1], a.value)
        elif a.kind == "late" and 0 <= k < n:
            if not a.extend:
                starts[k] += a.value
            ends[k] += a.value
            for j in range(k + 1, n):
                starts[j] += a.value
                ends[j] += a.value
    return [TimedSlot(s, starts[i], ends[i]) for i, s in enumerate(sheet.slots)]


def now_next(slots: list[TimedSlot], at: float) -> NowNext:
    current = next((t for t in slots if t.start <= at < t.end), None)
    upcoming = next((t for t in slots if t.start > at), None)
    behind = (slots[-1].end - slots[-1].slot.end) if slots else 0.0
    return NowNext(current, upcoming, behind, bool(slots) and at >= slots[-1].end)


def moments(slots: list[TimedSlot], ending_seconds: float) -> list[tuple[float, str, TimedSlot]]:
    """Every slot's start, last-minute and end moments, in the order they happen."""
    out = []
    for t in slots:
        out.append((t.start, "start", t))
        if t.end - ending_seconds > t.start:
            out.append((t.end - ending_seconds, "ending", t))
        out.append((t.end, "end", t))
    return sorted(out, key=lambda m: (m[0], MOMENT_ORDER[m[1]], m[2].slot.index))
