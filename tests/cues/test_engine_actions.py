"""Continue modes, waits, stopping one cue, and GPIO light fades on gpiozero's mock pins."""

from __future__ import annotations

from cues.sheet import parse_sheet
from drivers.lights import LightBank

SHEET = """
[dmx.channels]
a = 1
b = 2

[lights]
lamp = { kind = "pwm", pin = "GPIO18" }
rgb = { kind = "rgb", pins = ["GPIO5", "GPIO6", "GPIO13"] }

[[cues]]
name = "first"
post_wait = 1.5
continue = "auto-continue"
[[cues.actions]]
kind = "dmx"
channels = { a = 200 }
fade = 4

[[cues]]
name = "second"
[[cues.actions]]
kind = "dmx"
channels = { b = 100 }
[[cues.actions]]
kind = "wait"
seconds = 2
[[cues.actions]]
kind = "dmx"
channels = { b = 250 }

[[cues]]
name = "halt-first"
list = false
[[cues.actions]]
kind = "stop_cue"
cue = "first"

[[cues]]
name = "lamp-up"
list = false
[[cues.actions]]
kind = "light"
target = "lamp"
level = 0.8
fade = 2
[[cues.actions]]
kind = "light"
target = "rgb"
colour = "#ff8000"
level = 0.5
"""


def test_auto_continue_fires_the_next_cue_after_the_post_wait_while_the_fade_runs_on(make_show):
    show = make_show(parse_sheet(SHEET))
    show.engine.go()
    show.run(1.4)
    assert [p["cue"] for k, p in show.events if k == "fired"] == ["first"]
    show.run(0.2)
    assert [p["cue"] for k, p in show.events if k == "fired"] == ["first", "second"]
    assert show.widget.levels[:2] == bytes([80, 100])  # a is still fading, b jumped
    show.run(1.8)
    assert show.widget.levels[:2] == bytes([170, 100]), "the second b level waits for the 2 s wait"
    show.run(0.3)
    assert show.widget.levels[1] == 250
    show.run(2.0)
    assert show.widget.levels[:2] == bytes([200, 250])


def test_stop_cue_stops_one_cue_and_leaves_the_others(make_show):
    show = make_show(parse_sheet(SHEET))
    show.engine.go()
    show.run(2.0)  # first is half way; second has started
    show.engine.fire("halt-first")
    show.run(3.0)
    assert show.widget.levels[:2] == bytes([100, 250]), "a froze at 100, b's wait still completed"
    assert ("stopped", {"cue": "first", "reason": "cue:halt-first"}) in show.events


def test_light_fades_reach_the_gpio_pins(make_show, gpio_pins):
    sheet = parse_sheet(SHEET)
    lights = LightBank(sheet.lights, gpio_pins)
    try:
        show = make_show(sheet, outputs={"lights": lights})
        show.engine.fire("lamp-up")
        assert (gpio_pins.pin("GPIO5").state, gpio_pins.pin("GPIO6").state) == (0.5, round(128 / 255 * 0.5, 3))
        show.run(1.0)
        assert gpio_pins.pin("GPIO18").state == 0.4
        show.run(1.0)
        assert gpio_pins.pin("GPIO18").state == 0.8
        show.engine.battery_event("warning")
        assert gpio_pins.pin("GPIO18").state == 0.8, "the lamp cue is not power-hungry"
    finally:
        lights.close()
