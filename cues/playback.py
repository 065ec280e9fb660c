"""Playing a cue's actions: DMX, chases, GPIO lights, sound, messages, stopping; and writing outputs.

Mixed into the Engine (cues/engine.py), which owns the state these methods share: the mixer, the
outputs, the sheet, the running cues and what was last written to each output.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cues.mixer import Chase
from cues.sheet import Action, Cue

log = logging.getLogger("fieldkit.cues")


@dataclass
class CueRun:
    run_id: int
    cue: Cue
    reason: str
    fired_at: float
    go_at: float
    ends_at: float
    state: str = "running"  # running, done, stopped


class Playback:
    """The half of the Engine that turns due actions into levels and writes changed levels out."""

    def _act(self, run: CueRun, a: Action, at: float) -> None:
        owner = run.cue.name
        if a.kind == "dmx":
            self.mixer.set_dmx(dict(a.channels), at, a.fade, owner)
        elif a.kind == "chase":
            steps = [self.sheet.scenes[s] for s in a.steps]
            self.mixer.add_chase(Chase(owner, run.run_id, steps, a.step, a.fade, a.loops, at))
        elif a.kind == "light":
            self._light(a, at, owner)
        elif a.kind in ("sound", "sound_fade", "sound_stop"):
            self._sound(run, a, at)
        elif a.kind == "publish" and self.outputs.publish:
            self.outputs.publish(a.topic, {**dict(a.payload), "cue": owner})
        elif a.kind == "stop_cue":
            if self._stop_cue(a.target, at):
                self.listener("stopped", {"cue": a.target, "reason": f"cue:{owner}"})
        elif a.kind == "stop_all":
            self._stop_all(at, f"cue:{owner}")

    def _light(self, a: Action, at: float, owner: str) -> None:
        light = self.sheet.lights[a.target]
        if light.kind == "rgb":
            colour = a.colour or "#ffffff"
            parts = [int(colour[i:i + 2], 16) / 255 * a.level for i in (1, 3, 5)]
        else:
            parts = [a.level]
        for i, value in enumerate(parts):
            self.mixer.set(("light", a.target, i), value, at, a.fade, owner)

    def _sound(self, run: CueRun, a: Action, at: float) -> None:
        key, owner = ("volume", a.target), run.cue.name
        if a.kind == "sound_fade":
            self.mixer.set(key, a.volume, at, a.fade, owner)
            return
        generation = self._sound_generation.get(a.target, 0) + 1
        self._sound_generation[a.target] = generation
        if a.kind == "sound_stop":
            self.mixer.set(key, 0, at, a.fade, owner)
            self._push(at + a.fade, "sound_off", extra=(a.target, generation))
            return
        paths = []
        for name in a.files:
            path = Path(name) if Path(name).is_absolute() else self.outputs.sound_dir / name
            if path.is_file():
                paths.append(str(path))
            else:
                log.warning("event=sound_missing cue=%s file=%s", owner, path)
                self.listener("sound_missing", {"cue": owner, "file": str(path)})
        if not paths:
            return
        self.mixer.set(key, 0 if a.fade else a.volume, at, 0, owner)
        self.mixer.set(key, a.volume, at, a.fade, owner)
        self._sent_volume[a.target] = round(self.mixer.value(key, at))
        self._sound_owner[a.target] = owner
        self._sound_files[a.target] = [Path(p).name for p in paths]
        self._audio("play", a.target, paths, self._sent_volume[a.target], a.loop)

    def _stop_cue(self, name: str, at: float) -> int:
        stopped = 0
        for run in self.runs.values():
            if run.cue.name == name and run.state == "running":
                run.state, stopped = "stopped", stopped + 1
        if stopped:
            self.mixer.freeze(at, owner=name)
            for target, owner in list(self._sound_owner.items()):
                if owner == name:
                    self._stop_sound(target)
        return stopped

    def _stop_all(self, at: float, reason: str) -> None:
        for run in self.runs.values():
            if run.state == "running":
                run.state = "stopped"
        self._items = []
        self.mixer.freeze(at)
        for target in list(self._sound_owner):
            self._stop_sound(target)
        if self.sheet.stop_all_scene:
            self.mixer.set_dmx(self.sheet.scenes[self.sheet.stop_all_scene], at, 0, "stop_all")
        log.info("event=stop_all reason=%s", reason)
        self.listener("stop_all", {"reason": reason})

    def _stop_sound(self, target: str) -> None:
        self._sound_generation[target] = self._sound_generation.get(target, 0) + 1
        self._sound_owner.pop(target, None)
        self._sound_files.pop(target, None)
        self.mixer.set(("volume", target), 0, 0, 0, "")
        self._audio("stop", target)

    # -- outputs --------------------------------------------------------------------------------
    def scale(self, owner: str) -> float:
        if self.power_policy != "dim" or not self.battery.low or not owner:
            return 1.0
        try:
            hungry = self.sheet.cue(owner).power_hungry
        except KeyError:
            hungry = False
        return self.dim_percent / 100 if hungry else 1.0

    def _render(self, now: float) -> None:
        frame = self.mixer.dmx_frame(self.sheet.dmx_size, now, self.scale)
        if frame != self._sent_frame and self.outputs.dmx is not None:
            self._output(self.outputs.dmx.send, frame)
        self._sent_frame = frame
        for name, light in self.sheet.lights.items():
            values = self.mixer.light_values(name, 3 if light.kind == "rgb" else 1, now, self.scale)
            if values != self._sent_lights.get(name):
                self._sent_lights[name] = values
                if self.outputs.lights is not None:
                    self._output(self.outputs.lights.set, name, values)
        for key, param in list(self.mixer.params.items()):
            if key[0] == "volume" and key[1] in self._sound_owner:
                volume = round(param.value(now))
                if volume != self._sent_volume.get(key[1]):
                    self._sent_volume[key[1]] = volume
                    self._audio("set_volume", key[1], volume)

    def _audio(self, method: str, *args: Any) -> None:
        if self.outputs.audio is not None:
            self._output(getattr(self.outputs.audio, method), *args)

    @staticmethod
    def _output(fn: Callable, *args: Any) -> None:
        try:
            fn(*args)
        except Exception:  # a driver that raises must not stop the show; drivers log their own detail
            log.exception("event=output_failed output=%s", getattr(fn, "__qualname__", fn))
