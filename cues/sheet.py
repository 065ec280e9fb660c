"""The cue sheet: a TOML reference document, parsed and validated into plain dataclasses.

Every error names the line it comes from (``line 14: cue 'walk-in' action 2: unknown kind 'dmxx'``):
tomllib gives the position of a syntax error, ``kit.toml_lines.LineIndex`` maps a semantic error's key
path back to its line. A sheet that fails validation is refused whole; the running one stays.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from kit.toml_lines import LineIndex, Path

CONTINUE_MODES = ("stop", "auto-continue", "auto-follow")
SENSOR_KINDS = ("motion", "button", "beam", "light")
TRIGGER_KINDS = ("sensor", "admission", "sale", "battery_low", "time", "every", "slot", "pickup", "drop", "manual")
DROP_MOMENTS = ("started", "last_minute", "sold_out", "ended")  # a live drop's moments (pos/event/drop)
SLOT_MOMENTS = ("start", "ending", "end")  # the run-sheet's slot moments (lead/event/slot)
ACTION_KINDS = ("dmx", "chase", "light", "sound", "sound_fade", "sound_stop", "publish", "wait", "stop_cue", "stop_all")
LIGHT_KINDS = ("led", "pwm", "rgb")
NAME = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
TIME_OF_DAY = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


class SheetError(Exception):
    """The sheet cannot be used; ``line`` is where the problem is (None when unknown)."""

    def __init__(self, message: str, line: int | None = None, filename: str = "cue sheet"):
        self.line, self.filename, self.reason = line, filename, message
        where = f"{filename} line {line}" if line else filename
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Sensor:
    name: str
    kind: str  # motion, button, beam, light
    pin: str = ""
    channel: int = 0  # MCP3008 channel for light sensors
    threshold: float = 0.3  # light: active when the level is below this (dark)
    active_when: str = "below"


@dataclass(frozen=True)
class Light:
    name: str
    kind: str  # led, pwm, rgb
    pins: tuple[str, ...]


@dataclass(frozen=True)
class Trigger:
    kind: str
    sensor: str = ""
    on: str = "active"  # sensor edge: active or inactive
    debounce: float = 0.0
    every: int = 1  # admissions: every Nth; sales: every Nth
    colours: tuple[str, ...] = ("green", "amber")
    level: str = "warning"  # battery_low: warning or critical (critical also fires "warning" triggers)
    at: str = ""  # time: HH:MM local
    minutes: float = 0.0  # every N minutes
    when: str = ""  # slot: start, ending (its last minute) or end
    slot: str = ""  # slot: only the run-sheet slot of this name; drop: only the drop of this name ("" = any)


@dataclass(frozen=True)
class Conditions:
    after: str = ""  # HH:MM local
    before: str = ""
    battery_above: float | None = None


@dataclass(frozen=True)
class Action:
    kind: str
    fade: float = 0.0
    delay: float = 0.0
    scene: str = ""
    channels: tuple[tuple[int, int], ...] = ()  # (DMX channel, value)
    steps: tuple[str, ...] = ()  # chase scenes
    step: float = 1.0
    loops: int = 0  # chase: 0 = until stopped
    target: str = ""  # light name, cue name (stop_cue), sound channel
    level: float = 1.0
    colour: str = ""
    files: tuple[str, ...] = ()
    volume: float = 100.0
    loop: bool = False
    topic: str = ""
    payload: tuple[tuple[str, Any], ...] = ()
    seconds: float = 0.0


@dataclass(frozen=True)
class Cue:
    name: str
    title: str
    number: int  # position in the cue list, from 1
    triggers: tuple[Trigger, ...]
    conditions: Conditions
    actions: tuple[Action, ...]
    pre_wait: float = 0.0
    post_wait: float = 0.0
    continue_mode: str = "stop"
    cooldown: float = 0.0
    power_hungry: bool = False
    in_list: bool = True


@dataclass
class Sheet:
    name: str
    dmx_names: dict[str, int]
    dmx_size: int
    scenes: dict[str, dict[int, int]]
    lights: dict[str, Light]
    sensors: dict[str, Sensor]
    cues: list[Cue]
    stop_all_scene: str = ""
    filename: str = "cue sheet"
    text: str = field(default="", repr=False)

    def cue(self, name: str) -> Cue:
        for c in self.cues:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def cue_list(self) -> list[Cue]:
        return [c for c in self.cues if c.in_list]


class _Checker:
    """Reads values out of the parsed TOML, raising SheetError with the line of the offending key."""

    def __init__(self, index: LineIndex, filename: str):
        self.index, self.filename = index, filename

    def fail(self, path: Path, message: str) -> SheetError:
        return SheetError(message, self.index.line_of(path), self.filename)

    def table(self, value: Any, path: Path, what: str) -> dict:
        if not isinstance(value, dict):
            raise self.fail(path, f"{what} must be a table")
        return value

    def number(self, table: dict, key: str, path: Path, what: str, default: float = 0.0,
               low: float = 0.0, high: float = 86400.0) -> float:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail((*path, key), f"{what}: {key} must be a number, not {value!r}")
        if not low <= value <= high:
            raise self.fail((*path, key), f"{what}: {key} = {value} is outside {low:g}..{high:g}")
        return float(value)

    def text(self, table: dict, key: str, path: Path, what: str, default: str | None = None,
             choices: tuple[str, ...] = (), pattern: re.Pattern | None = None) -> str:
        if key not in table:
            if default is None:
                raise self.fail(path, f"{what}: {key} is missing")
            return default
        value = table[key]
        if not isinstance(value, str):
            raise self.fail((*path, key), f"{what}: {key} must be text, not {value!r}")
        if choices and value not in choices:
            raise self.fail((*path, key), f"{what}: unknown {key} {value!r} (expected one of {', '.join(choices)})")
        if pattern and not pattern.match(value):
            raise self.fail((*path, key), f"{what}: {key} {value!r} is not valid")
        return value

    def unknown_keys(self, table: dict, allowed: set[str], path: Path, what: str) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail((*path, key), f"{what}: unknown key {key!r} (expected one of {', '.join(sorted(allowed))})")


def parse_sheet(text: str | bytes, filename: str = "cue sheet") -> Sheet:
    """Parse and validate a cue sheet; raises SheetError naming the line of the first problem."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise SheetError(f"not UTF-8 text (byte {e.start})", None, filename) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        match = re.search(r"\(at line (\d+), column (\d+)\)", str(e))
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(e))
        line = int(match.group(1)) if match else None
        raise SheetError(f"not valid TOML: {reason}", line, filename) from None
    from cues.sheet_parts import build_sheet

    return build_sheet(data, _Checker(LineIndex(text), filename), filename, text)
