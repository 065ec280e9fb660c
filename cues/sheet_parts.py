"""Builds a Sheet from parsed TOML: one function per section, each error tied to its key's line."""

from __future__ import annotations

from typing import Any

from cues.sheet import (
    ACTION_KINDS,
    COLOUR,
    CONTINUE_MODES,
    DROP_MOMENTS,
    LIGHT_KINDS,
    NAME,
    SENSOR_KINDS,
    SLOT_MOMENTS,
    TIME_OF_DAY,
    TRIGGER_KINDS,
    Action,
    Conditions,
    Cue,
    Light,
    Sensor,
    Sheet,
    Trigger,
    _Checker,
)

TOP_KEYS = {"sheet", "dmx", "scenes", "lights", "sensors", "cues"}
CUE_KEYS = {"name", "title", "pre_wait", "post_wait", "continue", "cooldown", "power_hungry", "list",
            "triggers", "conditions", "actions"}
DAY = 86400.0


def build_sheet(data: dict, c: _Checker, filename: str, text: str) -> Sheet:
    c.unknown_keys(data, TOP_KEYS, (), "sheet")
    head = c.table(data.get("sheet", {}), ("sheet",), "[sheet]")
    c.unknown_keys(head, {"name", "stop_all_scene"}, ("sheet",), "[sheet]")
    name = c.text(head, "name", ("sheet",), "[sheet]", default="Cue sheet")
    dmx_names, dmx_size = _dmx(data.get("dmx", {}), c)
    scenes = {key: _levels(value, ("scenes", key), c, dmx_names, f"scene {key!r}")
              for key, value in c.table(data.get("scenes", {}), ("scenes",), "[scenes]").items()}
    lights = _lights(data.get("lights", {}), c)
    sensors = _sensors(data.get("sensors", {}), c)
    raw_cues = data.get("cues", [])
    if not isinstance(raw_cues, list) or not raw_cues:
        raise c.fail(("cues",), "the sheet has no cues: add at least one [[cues]] table")
    cues: list[Cue] = []
    for i, raw in enumerate(raw_cues):
        cues.append(_cue(raw, i, c, dmx_names, scenes, lights, sensors))
    seen: set[str] = set()
    for i, cue in enumerate(cues):
        if cue.name in seen:
            raise c.fail(("cues", i, "name"), f"two cues are called {cue.name!r}")
        seen.add(cue.name)
    for i, cue in enumerate(cues):
        for j, action in enumerate(cue.actions):
            if action.kind == "stop_cue" and action.target not in seen:
                raise c.fail(("cues", i, "actions", j, "cue"), f"cue {cue.name!r} action {j + 1}: no cue called {action.target!r}")
    stop_all_scene = c.text(head, "stop_all_scene", ("sheet",), "[sheet]", default="")
    if stop_all_scene and stop_all_scene not in scenes:
        raise c.fail(("sheet", "stop_all_scene"), f"[sheet]: no scene called {stop_all_scene!r}")
    used = [ch for s in scenes.values() for ch in s] + [ch for cue in cues for a in cue.actions for ch, _ in a.channels]
    size = max([dmx_size, 24, *used])
    return Sheet(name, dmx_names, size, scenes, lights, sensors, cues, stop_all_scene, filename, text)


def _dmx(raw: Any, c: _Checker) -> tuple[dict[str, int], int]:
    table = c.table(raw, ("dmx",), "[dmx]")
    c.unknown_keys(table, {"channels", "size"}, ("dmx",), "[dmx]")
    size = int(c.number(table, "size", ("dmx",), "[dmx]", default=24, low=1, high=512))
    names: dict[str, int] = {}
    for key, value in c.table(table.get("channels", {}), ("dmx", "channels"), "[dmx.channels]").items():
        if not NAME.match(key):
            raise c.fail(("dmx", "channels", key), f"[dmx.channels]: {key!r} is not a usable name")
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 512:
            raise c.fail(("dmx", "channels", key), f"[dmx.channels]: {key} must be a DMX channel 1..512, not {value!r}")
        names[key] = value
    return names, size


def _channel(key: str, path: tuple, c: _Checker, names: dict[str, int], what: str) -> int:
    if key in names:
        return names[key]
    if key.isdigit() and 1 <= int(key) <= 512:
        return int(key)
    raise c.fail(path, f"{what}: {key!r} is neither a channel named in [dmx.channels] nor a number 1..512")


def _levels(raw: Any, path: tuple, c: _Checker, names: dict[str, int], what: str) -> dict[int, int]:
    levels: dict[int, int] = {}
    for key, value in c.table(raw, path, what).items():
        channel = _channel(str(key), (*path, key), c, names, what)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
            raise c.fail((*path, key), f"{what}: {key} must be a level 0..255, not {value!r}")
        levels[channel] = value
    return levels


def _lights(raw: Any, c: _Checker) -> dict[str, Light]:
    lights = {}
    for key, value in c.table(raw, ("lights",), "[lights]").items():
        path, what = ("lights", key), f"light {key!r}"
        table = c.table(value, path, what)
        c.unknown_keys(table, {"kind", "pin", "pins"}, path, what)
        kind = c.text(table, "kind", path, what, default="pwm", choices=LIGHT_KINDS)
        pins = table.get("pins", [table["pin"]] if "pin" in table else [])
        if not isinstance(pins, list) or not all(isinstance(p, str | int) for p in pins):
            raise c.fail(path, f"{what}: pins must be a list of GPIO pins")
        if len(pins) != (3 if kind == "rgb" else 1):
            raise c.fail(path, f"{what}: a {kind} light needs {'pins = [red, green, blue]' if kind == 'rgb' else 'one pin'}")
        lights[key] = Light(key, kind, tuple(str(p) for p in pins))
    return lights


def _sensors(raw: Any, c: _Checker) -> dict[str, Sensor]:
    sensors = {}
    for key, value in c.table(raw, ("sensors",), "[sensors]").items():
        path, what = ("sensors", key), f"sensor {key!r}"
        table = c.table(value, path, what)
        c.unknown_keys(table, {"kind", "pin", "channel", "threshold", "active_when"}, path, what)
        kind = c.text(table, "kind", path, what, choices=SENSOR_KINDS)
        if kind == "light":
            sensors[key] = Sensor(key, kind, channel=int(c.number(table, "channel", path, what, 0, 0, 7)),
                                  threshold=c.number(table, "threshold", path, what, 0.3, 0, 1),
                                  active_when=c.text(table, "active_when", path, what, "below", ("below", "above")))
        else:
            pin = table.get("pin")
            if not isinstance(pin, str | int) or isinstance(pin, bool):
                raise c.fail(path, f"{what}: pin is missing (e.g. pin = \"GPIO4\")")
            sensors[key] = Sensor(key, kind, pin=str(pin))
    return sensors


def _cue(raw: Any, i: int, c: _Checker, names: dict[str, int], scenes: dict, lights: dict, sensors: dict) -> Cue:
    path = ("cues", i)
    table = c.table(raw, path, f"cue {i + 1}")
    name = c.text(table, "name", path, f"cue {i + 1}", pattern=NAME)
    what = f"cue {name!r}"
    c.unknown_keys(table, CUE_KEYS, path, what)
    triggers = tuple(_trigger(t, (*path, "triggers", j), c, f"{what} trigger {j + 1}", sensors)
                     for j, t in enumerate(_array(table, "triggers", path, c, what)))
    actions = tuple(_action(a, (*path, "actions", j), c, f"{what} action {j + 1}", names, scenes, lights)
                    for j, a in enumerate(_array(table, "actions", path, c, what)))
    if not actions:
        raise c.fail(path, f"{what} has no actions: add at least one [[cues.actions]]")
    power_hungry = table.get("power_hungry", False)
    in_list = table.get("list", True)
    for key, value in (("power_hungry", power_hungry), ("list", in_list)):
        if not isinstance(value, bool):
            raise c.fail((*path, key), f"{what}: {key} must be true or false")
    return Cue(
        name=name,
        title=c.text(table, "title", path, what, default=name),
        number=i + 1,
        triggers=triggers,
        conditions=_conditions(table.get("conditions", {}), (*path, "conditions"), c, what),
        actions=actions,
        pre_wait=c.number(table, "pre_wait", path, what, high=DAY),
        post_wait=c.number(table, "post_wait", path, what, high=DAY),
        continue_mode=c.text(table, "continue", path, what, default="stop", choices=CONTINUE_MODES),
        cooldown=c.number(table, "cooldown", path, what, high=DAY),
        power_hungry=power_hungry,
        in_list=in_list,
    )


def _array(table: dict, key: str, path: tuple, c: _Checker, what: str) -> list:
    value = table.get(key, [])
    if not isinstance(value, list):
        raise c.fail((*path, key), f"{what}: {key} must be written as [[cues.{key}]] tables")
    return value


def _conditions(raw: Any, path: tuple, c: _Checker, what: str) -> Conditions:
    table = c.table(raw, path, f"{what} conditions")
    c.unknown_keys(table, {"after", "before", "battery_above"}, path, f"{what} conditions")
    battery = None
    if "battery_above" in table:
        battery = c.number(table, "battery_above", path, f"{what} conditions", low=0, high=100)
    return Conditions(
        after=c.text(table, "after", path, f"{what} conditions", default="", pattern=TIME_OF_DAY),
        before=c.text(table, "before", path, f"{what} conditions", default="", pattern=TIME_OF_DAY),
        battery_above=battery,
    )


def _trigger(raw: Any, path: tuple, c: _Checker, what: str, sensors: dict) -> Trigger:
    table = c.table(raw, path, what)
    kind = c.text(table, "kind", path, what, choices=TRIGGER_KINDS)
    allowed = {
        "sensor": {"sensor", "on", "debounce"}, "admission": {"every", "colours"}, "sale": {"every"},
        "battery_low": {"level"}, "time": {"at"}, "every": {"minutes"}, "slot": {"when", "slot"}, "pickup": {"when"}, "drop": {"when", "drop"}, "manual": set(),
    }[kind] | {"kind"}
    c.unknown_keys(table, allowed, path, what)
    if kind == "sensor":
        sensor = c.text(table, "sensor", path, what)
        if sensor not in sensors:
            raise c.fail((*path, "sensor"), f"{what}: no sensor called {sensor!r} in [sensors]")
        return Trigger(kind, sensor=sensor, on=c.text(table, "on", path, what, "active", ("active", "inactive")),
                       debounce=c.number(table, "debounce", path, what, high=60))
    if kind in ("admission", "sale"):
        every = int(c.number(table, "every", path, what, default=1, low=1, high=1_000_000))
        colours = table.get("colours", ["green", "amber"])
        if not isinstance(colours, list) or not set(colours) <= {"green", "amber", "red"}:
            raise c.fail((*path, "colours"), f"{what}: colours must be a list of green, amber, red")
        return Trigger(kind, every=every, colours=tuple(colours))
    if kind == "battery_low":
        return Trigger(kind, level=c.text(table, "level", path, what, "warning", ("warning", "critical")))
    if kind == "time":
        return Trigger(kind, at=c.text(table, "at", path, what, pattern=TIME_OF_DAY))
    if kind == "every":
        minutes = c.number(table, "minutes", path, what, default=-1, low=0.5, high=1440)
        return Trigger(kind, minutes=minutes)
    if kind == "slot":
        slot = c.text(table, "slot", path, what, default="")
        if len(slot) > 80:
            raise c.fail((*path, "slot"), f"{what}: a slot name is at most 80 characters")
        return Trigger(kind, when=c.text(table, "when", path, what, choices=SLOT_MOMENTS), slot=slot)
    if kind == "drop":
        return Trigger(kind, when=c.text(table, "when", path, what, choices=DROP_MOMENTS),
                       slot=c.text(table, "drop", path, what, default=""))  # the drop's name, "" = any drop
    if kind == "pickup":
        return Trigger(kind, when=c.text(table, "when", path, what, default="opens", choices=("opens",)))
    return Trigger(kind)


ACTION_KEYS = {
    "dmx": {"scene", "channels", "fade"}, "chase": {"steps", "step", "fade", "loops"},
    "light": {"target", "level", "colour", "fade"}, "sound": {"file", "files", "volume", "fade", "loop", "target"},
    "sound_fade": {"volume", "fade", "target"}, "sound_stop": {"fade", "target"},
    "publish": {"topic", "payload"}, "wait": {"seconds"}, "stop_cue": {"cue"}, "stop_all": set(),
}


def _action(raw: Any, path: tuple, c: _Checker, what: str, names: dict, scenes: dict, lights: dict) -> Action:
    table = c.table(raw, path, what)
    kind = c.text(table, "kind", path, what, choices=ACTION_KINDS)
    c.unknown_keys(table, ACTION_KEYS[kind] | {"kind", "delay"}, path, what)
    common = {"fade": c.number(table, "fade", path, what, high=3600), "delay": c.number(table, "delay", path, what, high=DAY)}
    if kind == "dmx":
        scene = c.text(table, "scene", path, what, default="")
        if scene and scene not in scenes:
            raise c.fail((*path, "scene"), f"{what}: no scene called {scene!r} in [scenes]")
        levels = _levels(table.get("channels", {}), (*path, "channels"), c, names, what)
        if not scene and not levels:
            raise c.fail(path, f"{what}: a dmx action needs scene = \"…\" or channels = {{…}}")
        merged = {**scenes.get(scene, {}), **levels}
        return Action(kind, scene=scene, channels=tuple(sorted(merged.items())), **common)
    if kind == "chase":
        steps = table.get("steps")
        if not isinstance(steps, list) or len(steps) < 2:
            raise c.fail((*path, "steps"), f"{what}: steps must list at least two scenes")
        for s in steps:
            if s not in scenes:
                raise c.fail((*path, "steps"), f"{what}: no scene called {s!r} in [scenes]")
        return Action(kind, steps=tuple(steps), step=c.number(table, "step", path, what, 1.0, 0.02, 3600),
                      loops=int(c.number(table, "loops", path, what, 0, 0, 100000)), **common)
    if kind == "light":
        target = c.text(table, "target", path, what)
        if target not in lights:
            raise c.fail((*path, "target"), f"{what}: no light called {target!r} in [lights]")
        colour = c.text(table, "colour", path, what, default="", pattern=COLOUR)
        if colour and lights[target].kind != "rgb":
            raise c.fail((*path, "colour"), f"{what}: light {target!r} is not an rgb light")
        return Action(kind, target=target, level=c.number(table, "level", path, what, 1.0, 0, 1), colour=colour, **common)
    if kind in ("sound", "sound_fade", "sound_stop"):
        target = c.text(table, "target", path, what, default="main", pattern=NAME)
        volume = c.number(table, "volume", path, what, 100.0, 0, 130)
        if kind != "sound":
            return Action(kind, target=target, volume=volume, **common)
        files = table.get("files", [table["file"]] if "file" in table else None)
        if not isinstance(files, list) or not files or not all(isinstance(f, str) and f for f in files):
            raise c.fail(path, f"{what}: a sound action needs file = \"…\" or files = [\"…\", …]")
        loop = table.get("loop", False)
        if not isinstance(loop, bool):
            raise c.fail((*path, "loop"), f"{what}: loop must be true or false")
        return Action(kind, target=target, files=tuple(files), volume=volume, loop=loop, **common)
    if kind == "publish":
        payload = c.table(table.get("payload", {}), (*path, "payload"), f"{what} payload")
        return Action(kind, topic=c.text(table, "topic", path, what), payload=tuple(payload.items()), **common)
    if kind == "wait":
        return Action(kind, seconds=c.number(table, "seconds", path, what, -1, 0, DAY), **common)
    if kind == "stop_cue":
        return Action(kind, target=c.text(table, "cue", path, what), **common)
    return Action(kind, **common)
