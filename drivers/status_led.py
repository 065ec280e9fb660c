"""The kit's status LED: the example driver every other device follows.

Interface: ``StatusLED.show(state)`` with state online / degraded / offline. Backends: ``gpio``
(gpiozero on the Pi's pins), ``sim`` (the same gpiozero code on its mock pin factory, so tests
and the demo run the real code path), ``none``. Patterns: steady on = online, slow blink =
degraded, fast blink = offline (readable from across a courtyard).
"""

from __future__ import annotations

import logging
from typing import Protocol

from drivers.base import DeviceUnavailable, choose_backend, mock_pin_factory, real_pin_factory

log = logging.getLogger("fieldkit.drivers.status_led")

PATTERNS = {  # (on seconds, off seconds); None = steady on
    "online": None,
    "degraded": (1.0, 1.0),
    "offline": (0.15, 0.15),
}


class StatusLED(Protocol):
    state: str

    def show(self, state: str) -> None: ...
    def close(self) -> None: ...


class GpioStatusLED:
    """A gpiozero LED; works on real pins and on gpiozero's mock pins alike."""

    def __init__(self, pin: str, pin_factory=None):
        from gpiozero import LED

        self.led = LED(pin, pin_factory=pin_factory)
        self.state = ""

    def show(self, state: str) -> None:
        if state == self.state:
            return
        pattern = PATTERNS.get(state, PATTERNS["offline"])
        if pattern is None:
            self.led.on()
        else:
            self.led.blink(on_time=pattern[0], off_time=pattern[1], background=True)
        self.state = state

    @property
    def is_lit(self) -> bool:
        return bool(self.led.is_lit)

    def close(self) -> None:
        self.led.close()


class NoStatusLED:
    state = ""

    def show(self, state: str) -> None:
        self.state = state

    def close(self) -> None:
        pass


def open_status_led(config) -> StatusLED:
    pin = config["status_led.pin"]
    return choose_backend(config, "status_led.backend", {
        "gpio": lambda: GpioStatusLED(pin, real_pin_factory()),
        "sim": lambda: GpioStatusLED(pin, mock_pin_factory()),
        "none": NoStatusLED,
    })


def doctor_check(config):
    from kit.doctor import ok, python_module_check, warn

    backend = config.backend("status_led.backend")
    if backend == "auto":
        backend = "sim" if config.simulate else "gpio"
    if backend == "none":
        return ok("status LED", "disabled")
    if backend == "sim":
        return ok("status LED", f"simulated on {config['status_led.pin']}")
    check = python_module_check("status LED", "lgpio", "the status LED",
                                "on a Pi: apt install python3-lgpio (or set status_led.backend = \"none\")")
    if check.level != "OK":
        return check
    try:
        led = open_status_led(config)
        led.close()
    except (DeviceUnavailable, Exception) as e:  # any GPIO failure is a device problem, not a crash
        return warn("status LED", f"cannot drive {config['status_led.pin']}: {e}", "check the pin setting and wiring")
    return ok("status LED", f"on {config['status_led.pin']}")
