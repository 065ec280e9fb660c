"""The engine's clocks: the real one, and a virtual one that tests and rehearsals step by hand.

The engine asks only two questions: ``monotonic()`` for fades and waits (never jumps) and ``wall()``
for schedules (unix time, which a lead may correct). A virtual clock answers both from numbers that
move only when told, so a 10-minute cue list runs in milliseconds and every frame is reproducible.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class RealClock:
    def __init__(self, wall: Callable[[], float] = time.time):
        self._wall = wall

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return self._wall()


class VirtualClock:
    """Time that moves only on ``advance``; ``engine.run_for`` ticks the engine at each step."""

    def __init__(self, wall_start: float, monotonic_start: float = 1000.0):
        # Whole microseconds, so a thousand steps of 0.1 s land exactly on 100 s (floats would drift).
        self._mono_us = round(monotonic_start * 1_000_000)
        self._wall_us = round(wall_start * 1_000_000)

    def monotonic(self) -> float:
        return self._mono_us / 1_000_000

    def wall(self) -> float:
        return self._wall_us / 1_000_000

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a virtual clock does not go backwards")
        step = round(seconds * 1_000_000)
        self._mono_us += step
        self._wall_us += step
