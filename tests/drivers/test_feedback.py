"""Door lights and buzzer on gpiozero's mock pins: what staff see and hear for each verdict."""

from __future__ import annotations

import pytest

from drivers.base import mock_pin_factory
from drivers.feedback import SilentDoorFeedback, open_door_feedback
from kit.config import load_config
from kit.testing import wait_for


@pytest.fixture
def feedback(tmp_path):
    config = load_config({"FIELDKIT_HOME": str(tmp_path), "FIELDKIT_KIT_SIMULATE": "1"}).with_values(
        checkin__feedback__green_pin="GPIO19", checkin__feedback__red_pin="GPIO20", checkin__feedback__buzzer_pin="GPIO21")
    fb = open_door_feedback(config)
    factory = mock_pin_factory()
    pins = {name: factory.pin(n) for name, n in (("green", 19), ("red", 20), ("buzzer", 21))}
    for pin in pins.values():
        pin.clear_states()
    yield fb, pins
    fb.close()


def on_time(pin) -> float:
    """How long the pin was high, from its recorded history (mock pins record every change)."""
    states, total = pin.states, 0.0
    for a, b in zip(states, states[1:], strict=False):
        if a.state:
            total += b.timestamp - a.timestamp
    return total


def pulses(pin) -> int:
    return sum(1 for a, b in zip(pin.states, pin.states[1:], strict=False) if not a.state and b.state)


def wait_quiet(pins, timeout=5.0):
    wait_for(lambda: not any(p.state for p in pins.values()), timeout, what="lights and buzzer off")


def test_admit_is_green_with_a_short_beep(feedback):
    fb, pins = feedback
    fb.signal("green")
    assert pins["green"].state and not pins["red"].state and pins["buzzer"].state
    wait_quiet(pins)
    assert pulses(pins["green"]) == 1 and pulses(pins["red"]) == 0 and pulses(pins["buzzer"]) == 1
    assert on_time(pins["buzzer"]) < 0.25
    assert 0.8 < on_time(pins["green"]) < 1.5


def test_refusal_is_red_with_a_long_buzz(feedback):
    fb, pins = feedback
    fb.signal("red")
    assert pins["red"].state and not pins["green"].state
    wait_quiet(pins)
    assert pulses(pins["red"]) == 1 and pulses(pins["green"]) == 0 and pulses(pins["buzzer"]) == 1
    assert on_time(pins["buzzer"]) > 0.5  # long enough to tell apart from the admit beep


def test_needs_attention_blinks_both_lights_with_two_beeps(feedback):
    fb, pins = feedback
    fb.signal("amber")
    wait_for(lambda: pulses(pins["green"]) == 4 and pulses(pins["buzzer"]) == 2, 5, what="four blinks")
    wait_quiet(pins)
    assert pulses(pins["green"]) == 4 and pulses(pins["red"]) == 4 and pulses(pins["buzzer"]) == 2


def test_a_new_verdict_cuts_the_previous_one_short(feedback):
    fb, pins = feedback
    fb.signal("red")
    fb.signal("green")
    assert not pins["red"].state and pins["green"].state
    assert fb.last_colour == "green"
    wait_quiet(pins)
    assert on_time(pins["red"]) < 0.3


def test_unknown_colour_is_a_clear_error(feedback):
    fb, _ = feedback
    with pytest.raises(ValueError, match="green, red, amber"):
        fb.signal("blue")


def test_no_gpio_never_stops_checkin(tmp_path):
    config = load_config({"FIELDKIT_HOME": str(tmp_path), "FIELDKIT_KIT_SIMULATE": "0"}).with_values(
        checkin__feedback__green_pin="NOT-A-PIN")
    fb = open_door_feedback(config)
    assert isinstance(fb, SilentDoorFeedback)
    fb.signal("green")
    assert "Door lights and buzzer" in fb.status()
    none = open_door_feedback(config.with_values(checkin__feedback__backend="none"))
    none.signal("red")
    assert none.status() == "ok"
