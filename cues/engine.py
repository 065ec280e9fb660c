"""The cue engine: a cue list with GO, triggers, and actions played out on an injectable clock.

Show-control model (QLab, QLC+): GO fires the cue under the playhead and moves it on; each cue waits
its pre-wait, runs its actions (fades, chases, sound, messages), then stops, auto-continues after its
post-wait, or auto-follows when its last fade ends. Everything is driven by ``tick()``: the service
ticks from a real clock, tests tick a virtual one, and a trigger ticks at once so an edge reaches the
DMX widget without waiting for the next frame. Outputs are written only when a value changed.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cues.mixer import Mixer
from cues.playback import CueRun, Playback
from cues.sheet import Action, Cue, Sheet
from cues.triggers import Battery, TriggerState

log = logging.getLogger("fieldkit.cues")
POLICIES = ("dim", "skip", "ignore")


@dataclass
class Outputs:
    """Where the engine's levels go. Any of them may be None (that kind of output is not fitted)."""

    dmx: Any = None  # .send(levels: bytes)
    lights: Any = None  # .set(name, values: tuple[float, ...])
    audio: Any = None  # .play(target, paths, volume, loop) / .set_volume(target, v) / .stop(target)
    publish: Callable[[str, dict], None] | None = None
    sound_dir: Path = Path(".")


@dataclass(order=True)
class _Item:
    at: float
    seq: int
    what: str = field(compare=False)  # action, end, continue, sound_off
    run_id: int = field(compare=False, default=0)
    action: Action | None = field(compare=False, default=None)
    extra: Any = field(compare=False, default=None)


def action_duration(action: Action) -> float:
    if action.kind == "wait":
        return action.seconds
    if action.kind == "chase":
        return action.loops * len(action.steps) * action.step if action.loops else 0.0
    return action.fade


class Engine(Playback):
    def __init__(self, sheet: Sheet, clock, outputs: Outputs, *, tz: ZoneInfo | None = None,
                 power_policy: str = "dim", dim_percent: float = 40.0,
                 listener: Callable[[str, dict], None] | None = None):
        if power_policy not in POLICIES:
            raise ValueError(f"power policy must be one of {POLICIES}")
        self.sheet, self.clock, self.outputs = sheet, clock, outputs
        self.power_policy, self.dim_percent = power_policy, dim_percent
        self.listener = listener or (lambda _kind, _payload: None)
        self.lock = threading.RLock()
        self.mixer = Mixer()
        self.triggers = TriggerState(tz or ZoneInfo("UTC"))
        self.battery = Battery()
        self.playhead = 0
        self.runs: dict[int, CueRun] = {}
        self._items: list[_Item] = []
        self._seq = itertools.count()
        self._run_ids = itertools.count(1)
        self._sent_frame: bytes | None = None
        self._sent_lights: dict[str, tuple[float, ...]] = {}
        self._sent_volume: dict[str, int] = {}
        self._sound_owner: dict[str, str] = {}
        self._sound_generation: dict[str, int] = {}
        self._sound_files: dict[str, list[str]] = {}

    # -- the cue list ---------------------------------------------------------------------------
    def go(self, by: str = "go") -> Cue | None:
        """Fire the cue under the playhead and move the playhead on; None at the end of the list."""
        with self.lock:
            now = self.clock.monotonic()
            cues = self.sheet.cue_list
            if self.playhead >= len(cues):
                log.info("event=go_ignored reason=end_of_list")
                return None
            cue = cues[self.playhead]
            self.playhead += 1
            self._start(cue, by, now)
            self._tick(now)
            return cue

    def move_playhead(self, step: int) -> Cue | None:
        with self.lock:
            self.playhead = max(0, min(len(self.sheet.cue_list), self.playhead + step))
            return self.standing_by

    def set_playhead(self, name: str) -> None:
        with self.lock:
            names = [c.name for c in self.sheet.cue_list]
            if name not in names:
                raise KeyError(name)
            self.playhead = names.index(name)

    @property
    def standing_by(self) -> Cue | None:
        cues = self.sheet.cue_list
        return cues[self.playhead] if self.playhead < len(cues) else None

    def fire(self, name: str, reason: str = "manual") -> Cue:
        """Fire a cue by name now, bypassing cooldown and conditions (a person asked for it)."""
        with self.lock:
            cue = self.sheet.cue(name)
            now = self.clock.monotonic()
            self._start(cue, reason, now)
            self._tick(now)
            return cue

    def stop(self, name: str, reason: str = "manual") -> int:
        with self.lock:
            now = self.clock.monotonic()
            stopped = self._stop_cue(name, now)
            self._tick(now)
            if stopped:
                self.listener("stopped", {"cue": name, "reason": reason})
            return stopped

    def stop_all(self, reason: str = "manual") -> None:
        with self.lock:
            now = self.clock.monotonic()
            self._stop_all(now, reason)
            self._tick(now)

    def load(self, sheet: Sheet) -> None:
        """Switch to an already validated sheet. Levels stay where they are; running cues finish."""
        with self.lock:
            self.sheet = sheet
            self.playhead = min(self.playhead, len(sheet.cue_list))
            self._sent_frame = None
            log.info("event=sheet_loaded name=%r cues=%d", sheet.name, len(sheet.cues))

    def resend_outputs(self) -> None:
        """Write every level again on the next tick (new light devices, a replaced output)."""
        with self.lock:
            self._sent_frame = None
            self._sent_lights = {}

    # -- triggers -------------------------------------------------------------------------------
    def sensor_event(self, sensor: str, active: bool) -> list[str]:
        """A GPIO sensor changed; returns the cues it fired."""
        with self.lock:
            now = self.clock.monotonic()
            edge = "active" if active else "inactive"
            fired = []
            for cue in self.sheet.cues:
                for i, t in enumerate(cue.triggers):
                    if t.kind != "sensor" or t.sensor != sensor or t.on != edge:
                        continue
                    if not self.triggers.debounced(cue, i, now) and self._gate(cue, f"sensor:{sensor}", now):
                        fired.append(cue.name)
            if fired:
                self._tick(now)
            return fired

    def admission(self, payload: dict) -> list[str]:
        with self.lock:
            return self._fire_gated(self.triggers.admission_cues(self.sheet, payload), "admission")

    def sale(self, payload: dict) -> list[str]:
        with self.lock:
            return self._fire_gated(self.triggers.sale_cues(self.sheet), "sale")

    def slot_event(self, payload: dict) -> list[str]:
        """A run-sheet slot started, entered its last minute or ended (the lead service says when)."""
        with self.lock:
            return self._fire_gated(self.triggers.slot_cues(self.sheet, payload), f"slot:{payload.get('when')}")

    def drop_event(self, payload: dict) -> list[str]:
        """A live drop started, entered its last minute, sold out or ended."""
        with self.lock:
            return self._fire_gated(self.triggers.drop_cues(self.sheet, payload), f"drop:{payload.get('when')}")

    def pickup_window(self, payload: dict) -> list[str]:
        """A pickup window opened: pre-orders may be collected from now."""
        with self.lock:
            return self._fire_gated(self.triggers.pickup_cues(self.sheet, payload), "pickup")

    def battery_event(self, level: str, soc_percent: float | None = None) -> list[str]:
        """Battery news from the power service; entering low dims power-hungry cues at once."""
        with self.lock:
            if soc_percent is not None:
                self.battery.soc_percent = soc_percent
            if level not in ("ok", "warning", "critical") or level == self.battery.level:
                return []
            was_low, self.battery.level = self.battery.low, level
            if self.battery.low != was_low:
                log.info("event=battery_%s policy=%s dim_percent=%s", "low" if self.battery.low else "ok",
                         self.power_policy, self.dim_percent)
            fired = self._fire_gated(self.triggers.battery_cues(self.sheet, level), "battery_low")
            self._tick(self.clock.monotonic())
            return fired

    def _fire_gated(self, cues: list[Cue], reason: str) -> list[str]:
        now = self.clock.monotonic()
        fired = [c.name for c in dict.fromkeys(cues) if self._gate(c, reason, now)]
        if fired:
            self._tick(now)
        return fired

    def _gate(self, cue: Cue, reason: str, now: float) -> bool:
        why = self.triggers.refusal(cue, now, self.clock.wall(), self.battery, self.power_policy)
        if why:
            log.info("event=cue_skipped cue=%s trigger=%s why=%r", cue.name, reason, why)
            self.listener("skipped", {"cue": cue.name, "trigger": reason, "why": why})
            return False
        self._start(cue, reason, now)
        return True

    # -- time -----------------------------------------------------------------------------------
    def tick(self) -> None:
        with self.lock:
            now = self.clock.monotonic()
            for cue, trigger in self.triggers.due_schedules(self.sheet, self.clock.wall()):
                self._gate(cue, trigger.kind, now)
            self._tick(now)

    def run_for(self, seconds: float, step: float = 0.04) -> None:
        """Advance a virtual clock by ``seconds`` in ``step``s, ticking after each (tests, rehearsal)."""
        steps = round(seconds / step)
        for _ in range(steps):
            self.clock.advance(step)
            self.tick()

    def _tick(self, now: float) -> None:
        while self._items and self._items[0].at <= now:
            item = heapq.heappop(self._items)
            self.mixer.advance_chases(item.at)
            self._run_item(item)
        self.mixer.advance_chases(now)
        self._render(now)

    def _push(self, at: float, what: str, run_id: int = 0, action: Action | None = None, extra: Any = None) -> None:
        heapq.heappush(self._items, _Item(at, next(self._seq), what, run_id, action, extra))

    # -- running cues ---------------------------------------------------------------------------
    def _start(self, cue: Cue, reason: str, now: float) -> None:
        run_id = next(self._run_ids)
        go_at = now + cue.pre_wait
        offset, ends = 0.0, go_at
        for action in cue.actions:
            at = go_at + offset + action.delay
            self._push(at, "action", run_id, action)
            ends = max(ends, at + action_duration(action))
            if action.kind == "wait":
                offset += action.seconds
        self.runs[run_id] = CueRun(run_id, cue, reason, now, go_at, ends)
        self._push(ends, "end", run_id)
        if cue.continue_mode == "auto-continue":
            self._push(go_at + cue.post_wait, "continue", run_id)
        elif cue.continue_mode == "auto-follow":
            self._push(ends, "continue", run_id)
        self.triggers.fired(cue, now)
        for old in [r for r in self.runs.values() if r.state != "running"]:
            del self.runs[old.run_id]
        log.info("event=cue_fired cue=%s reason=%s pre_wait=%s", cue.name, reason, cue.pre_wait)
        self.listener("fired", {"cue": cue.name, "title": cue.title, "reason": reason})

    def _run_item(self, item: _Item) -> None:
        if item.what == "sound_off":
            target, generation = item.extra
            if self._sound_generation.get(target) == generation:
                self._audio("stop", target)
            return
        run = self.runs.get(item.run_id)
        if run is None or run.state == "stopped":
            return
        if item.what == "end":
            run.state = "done"
        elif item.what == "continue":
            self._continue(run, item.at)
        elif item.action is not None:
            try:
                self._act(run, item.action, item.at)
            except Exception:  # one broken output must not stop the other actions
                log.exception("event=action_failed cue=%s kind=%s", run.cue.name, item.action.kind)

    def _continue(self, run: CueRun, at: float) -> None:
        cues = self.sheet.cue_list if run.cue.in_list else self.sheet.cues
        names = [c.name for c in cues]
        if run.cue.name not in names or names.index(run.cue.name) + 1 >= len(cues):
            return
        following = cues[names.index(run.cue.name) + 1]
        if run.cue.in_list:
            self.playhead = names.index(following.name) + 1
        self._start(following, run.cue.continue_mode, at)

    # -- what the cue screen shows ----------------------------------------------------------------
    def snapshot(self) -> dict:
        with self.lock:
            now = self.clock.monotonic()
            states: dict[str, str] = {}
            for run in self.runs.values():
                if run.state == "running":
                    states[run.cue.name] = "pre-wait" if now < run.go_at else "running"
            frame = self._sent_frame or bytes(self.sheet.dmx_size)
            names = {v: k for k, v in self.sheet.dmx_names.items()}
            standing = self.standing_by
            return {
                "sheet": self.sheet.name,
                "standing_by": standing.name if standing else None,
                "cues": [{"name": c.name, "title": c.title, "number": c.number, "in_list": c.in_list,
                          "state": states.get(c.name, "idle"), "power_hungry": c.power_hungry,
                          "triggers": [t.kind for t in c.triggers]} for c in self.sheet.cues],
                "dmx": [{"channel": i + 1, "name": names.get(i + 1, ""), "value": v} for i, v in enumerate(frame)],
                "lights": {k: list(v) for k, v in self._sent_lights.items()},
                "sound": {t: {"files": self._sound_files.get(t, []), "volume": self._sent_volume.get(t, 0)}
                          for t in self._sound_owner},
                "battery": {"level": self.battery.level, "soc_percent": self.battery.soc_percent},
                "power_policy": self.power_policy,
            }
