"""GPIO lights for cues: plain LEDs (on/off), PWM LEDs (dimmable) and RGB LEDs, through gpiozero.

The cue engine computes every fade step and calls ``set(name, values)`` with levels 0..1, so a fade
looks the same on a PWM LED as on a DMX channel. Simulation uses gpiozero's mock pin factory: the
same gpiozero devices, with pins whose state a test or the cue screen can read.
"""

from __future__ import annotations

import logging

from drivers.base import DeviceUnavailable, choose_backend, mock_pin_factory, real_pin_factory

log = logging.getLogger("fieldkit.lights")


class LightBank:
    def __init__(self, lights: dict, pin_factory):
        """``lights``: name → an object with ``kind`` (led, pwm, rgb) and ``pins`` (cues.sheet.Light)."""
        from gpiozero import LED, PWMLED, RGBLED
        from gpiozero.exc import GPIOZeroError

        self.factory = pin_factory
        self.devices: dict = {}
        self.problems: dict[str, str] = {}
        for name, light in lights.items():
            try:
                if light.kind == "rgb":
                    self.devices[name] = RGBLED(*light.pins, pin_factory=pin_factory)
                elif light.kind == "pwm":
                    self.devices[name] = PWMLED(light.pins[0], pin_factory=pin_factory)
                else:
                    self.devices[name] = LED(light.pins[0], pin_factory=pin_factory)
            except (GPIOZeroError, ValueError, OSError) as e:
                self.problems[name] = f"light {name!r} on {', '.join(light.pins)}: {e}"
                log.warning("event=light_unavailable light=%s pins=%s error=%r", name, ",".join(light.pins), str(e))

    def set(self, name: str, values: tuple[float, ...]) -> None:
        device = self.devices.get(name)
        if device is None:
            return
        from gpiozero import LED, RGBLED

        if isinstance(device, RGBLED):
            device.value = tuple(max(0.0, min(1.0, v)) for v in values)
        elif isinstance(device, LED):
            device.value = values[0] >= 0.5
        else:
            device.value = max(0.0, min(1.0, values[0]))

    def value(self, name: str):
        device = self.devices.get(name)
        return None if device is None else device.value

    def status(self) -> dict:
        return {"available": not self.problems, "detail": "; ".join(self.problems.values()),
                "lights": sorted(self.devices)}

    def close(self) -> None:
        for device in self.devices.values():
            device.close()
        self.devices.clear()


def gpio_factory(config):
    """The pin factory for ``cues.gpio.backend``: the Pi's pins, gpiozero's mock pins, or None."""
    factories = {"gpio": real_pin_factory, "sim": mock_pin_factory, "none": lambda: None}
    try:
        return choose_backend(config, "cues.gpio.backend", factories)
    except DeviceUnavailable as e:
        log.warning("event=gpio_unavailable error=%r", str(e))
        return None


def open_lights(config, lights: dict) -> LightBank | None:
    factory = gpio_factory(config)
    return LightBank(lights, factory) if factory is not None and lights else None
