"""Door feedback: a green and a red LED and a buzzer, so staff know the verdict without looking.

``open_door_feedback(config).signal(colour)`` with colour ``green`` (admit: green light, one short
beep), ``red`` (refuse: red light, one long buzz) or ``amber`` (admitted but get a lead: both lights
blink together, which reads as amber on a two-colour LED, with two short beeps). A new signal cuts
the previous one short, so a fast queue never plays stale patterns.

Backends: ``gpio`` (gpiozero on the Pi's pins), ``sim`` (the same gpiozero code on its mock pin
factory; tests read the pins), ``none``. Missing GPIO never stops check-in: the object still
accepts signals and its ``status()`` says what is wrong.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from drivers.base import DeviceUnavailable, mock_pin_factory, real_pin_factory

log = logging.getLogger(__name__)

COLOURS = ("green", "red", "amber")


@dataclass(frozen=True)
class Pattern:
    """One verdict's lights and sound: (on, off, count) for the lights and the buzzer."""

    green: tuple[float, float, int] | None
    red: tuple[float, float, int] | None
    buzzer: tuple[float, float, int]


PATTERNS: dict[str, Pattern] = {
    "green": Pattern(green=(1.0, 0.0, 1), red=None, buzzer=(0.08, 0.0, 1)),
    "red": Pattern(green=None, red=(1.5, 0.0, 1), buzzer=(0.7, 0.0, 1)),
    "amber": Pattern(green=(0.25, 0.15, 4), red=(0.25, 0.15, 4), buzzer=(0.1, 0.1, 2)),
}


class DoorFeedback:
    """The interface: ``signal(colour)``, ``status()``, ``close()``."""

    last_colour = ""

    def signal(self, colour: str) -> None:
        raise NotImplementedError

    def status(self) -> str:
        return "ok"

    def close(self) -> None:
        pass


def _check_colour(colour: str) -> Pattern:
    try:
        return PATTERNS[colour]
    except KeyError:
        raise ValueError(f"unknown feedback colour {colour!r}; use one of {', '.join(COLOURS)}") from None


class GpioDoorFeedback(DoorFeedback):
    """Two gpiozero LEDs and a gpiozero Buzzer (an active buzzer: powered = sound)."""

    def __init__(self, green_pin: str, red_pin: str, buzzer_pin: str, pin_factory=None):
        from gpiozero import LED, Buzzer

        self.green = LED(green_pin, pin_factory=pin_factory)
        self.red = LED(red_pin, pin_factory=pin_factory)
        try:
            self.buzzer = Buzzer(buzzer_pin, pin_factory=pin_factory)
        except Exception:
            self.green.close()
            self.red.close()
            raise

    def signal(self, colour: str) -> None:
        pattern = _check_colour(colour)
        for device, part in ((self.green, pattern.green), (self.red, pattern.red), (self.buzzer, pattern.buzzer)):
            if part is None:
                device.off()  # also stops a blink still running from the previous verdict
            else:
                on, off, count = part
                device.blink(on_time=on, off_time=off, n=count, background=True)  # Buzzer.beep is blink
        self.last_colour = colour
        log.debug("event=door_feedback colour=%s", colour)

    def close(self) -> None:
        for device in (self.green, self.red, self.buzzer):
            device.close()


class SilentDoorFeedback(DoorFeedback):
    """No lights or buzzer (disabled, or the GPIO could not be opened: ``reason`` says why)."""

    def __init__(self, reason: str = ""):
        self.reason = reason

    def signal(self, colour: str) -> None:
        _check_colour(colour)
        self.last_colour = colour

    def status(self) -> str:
        return self.reason or "ok"


def open_door_feedback(config) -> DoorFeedback:
    """The door's lights and buzzer as configured; never raises for missing hardware."""
    name = config.backend("checkin.feedback.backend")
    if name == "auto":
        name = "sim" if config.simulate else "gpio"
    if name == "none":
        return SilentDoorFeedback()
    pins = (config["checkin.feedback.green_pin"], config["checkin.feedback.red_pin"], config["checkin.feedback.buzzer_pin"])
    try:
        factory = mock_pin_factory() if name == "sim" else real_pin_factory()
        return GpioDoorFeedback(*pins, pin_factory=factory)
    except DeviceUnavailable as e:
        reason = f"Door lights and buzzer unavailable: {e}"
    except Exception as e:  # a wrong pin name or a pin in use: a setup problem, not a crash
        reason = f"Door lights and buzzer cannot use pins {', '.join(pins)}: {e} — check checkin.feedback.*_pin"
    log.warning("event=door_feedback_unavailable reason=%r", reason)
    return SilentDoorFeedback(reason)
