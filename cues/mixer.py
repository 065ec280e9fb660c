"""Levels in motion: every DMX channel, light component and sound volume is a Param that fades.

The latest cue to touch a param owns it (latest takes precedence, as on a lighting desk). A fade
starts at the exact time its action was due, not when the engine happened to tick, so the frames a
virtual clock produces are the same at any tick rate. Dimming is applied at render time to params
whose owner is power-hungry, so lifting the dim restores the levels the cues asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

Key = tuple  # ("dmx", channel) | ("light", name, component) | ("volume", target)


class Param:
    __slots__ = ("start", "target", "t0", "duration", "owner")

    def __init__(self, value: float = 0.0, owner: str = ""):
        self.start = self.target = value
        self.t0, self.duration, self.owner = 0.0, 0.0, owner

    def value(self, now: float) -> float:
        if self.duration <= 0 or now >= self.t0 + self.duration:
            return self.target
        if now <= self.t0:
            return self.start
        return self.start + (self.target - self.start) * (now - self.t0) / self.duration

    @property
    def moving(self) -> bool:
        return self.duration > 0

    def freeze(self, now: float) -> None:
        self.start = self.target = self.value(now)
        self.duration = 0.0


@dataclass
class Chase:
    owner: str
    run_id: int
    steps: list[dict[int, int]]
    step: float
    fade: float
    loops: int
    t0: float
    last_index: int = -1

    @property
    def total_steps(self) -> int | None:
        return self.loops * len(self.steps) if self.loops else None


@dataclass
class Mixer:
    params: dict[Key, Param] = field(default_factory=dict)
    chases: list[Chase] = field(default_factory=list)

    def get(self, key: Key) -> Param:
        p = self.params.get(key)
        if p is None:
            p = self.params[key] = Param()
        return p

    def set(self, key: Key, target: float, t0: float, fade: float, owner: str) -> None:
        """Start a fade to ``target`` at ``t0`` (or jump when ``fade`` is 0)."""
        p = self.get(key)
        p.start = p.value(t0)
        p.target, p.t0, p.duration, p.owner = float(target), t0, max(fade, 0.0), owner

    def set_dmx(self, levels: dict[int, int], t0: float, fade: float, owner: str) -> None:
        for channel, value in levels.items():
            self.set(("dmx", channel), value, t0, fade, owner)

    def value(self, key: Key, now: float) -> float:
        p = self.params.get(key)
        return p.value(now) if p else 0.0

    def add_chase(self, chase: Chase) -> None:
        self.chases.append(chase)

    def advance_chases(self, now: float) -> None:
        """Apply every chase step that fell due up to ``now``, each at its own due time."""
        for chase in list(self.chases):
            index = int((now - chase.t0) / chase.step) if now >= chase.t0 else -1
            total = chase.total_steps
            if total is not None:
                index = min(index, total - 1)
            for i in range(chase.last_index + 1, index + 1):
                self.set_dmx(chase.steps[i % len(chase.steps)], chase.t0 + i * chase.step, chase.fade, chase.owner)
            chase.last_index = max(chase.last_index, index)
            if total is not None and chase.last_index >= total - 1:
                self.chases.remove(chase)

    def freeze(self, now: float, owner: str | None = None, run_id: int | None = None) -> None:
        """Stop fades and chases where they are: of one owner, or all of them."""
        for p in self.params.values():
            if owner is None or p.owner == owner:
                p.freeze(now)
        self.chases = [c for c in self.chases
                       if not (owner is None or (c.owner == owner and (run_id is None or c.run_id == run_id)))]

    def dmx_frame(self, size: int, now: float, scale: Callable[[str], float]) -> bytes:
        out = bytearray(size)
        for key, p in self.params.items():
            if key[0] == "dmx" and key[1] <= size:
                out[key[1] - 1] = max(0, min(255, int(p.value(now) * scale(p.owner) + 0.5)))  # half up
        return bytes(out)

    def light_values(self, name: str, components: int, now: float, scale: Callable[[str], float]) -> tuple[float, ...]:
        values = []
        for i in range(components):
            p = self.params.get(("light", name, i))
            values.append(round(max(0.0, min(1.0, p.value(now) * scale(p.owner))), 3) if p else 0.0)
        return tuple(values)

    def busy_until(self, owner: str) -> float:
        """When the last fade of ``owner`` ends (for auto-follow)."""
        ends = [p.t0 + p.duration for p in self.params.values() if p.owner == owner and p.moving]
        return max(ends, default=0.0)
