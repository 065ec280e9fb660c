"""The driver pattern: a small interface, real backends, a simulated backend that ships in the product.

A driver module defines an interface class, one class per backend, and ``open_<device>(config)``
that picks the backend from config via ``choose_backend``. Simulated backends speak the real
protocol (bytes on a pseudo-terminal, QR codes in frames, gpiozero's mock pins).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class DeviceUnavailable(Exception):
    """The device (or its library) is not there; the message says what to plug in or install."""


def choose_backend(config, key: str, factories: dict[str, Callable[[], T]]) -> T:
    """Build the backend named by setting ``key`` (``sim`` whenever the kit simulates)."""
    name = config.backend(key)
    if name == "auto":
        name = "sim" if config.simulate else next(n for n in factories if n != "sim")
    if name not in factories:
        raise DeviceUnavailable(f"{key}: unknown backend {name!r}; choose one of {', '.join(factories)}")
    return factories[name]()


_mock_lock = threading.Lock()


PIN_HISTORY = 256  # state changes a simulated pin remembers (gpiozero's mock pins keep every one)
_sim_pin_classes: dict[str, type] = {}


def simulated_pin_class(pwm: bool = True) -> type:
    """gpiozero's MockPin / MockPWMPin with a bounded history.

    gpiozero's mock pins append every state change to ``pin.states`` for test assertions and never
    forget one: a demo's blinking door light grew the cues process by ~0.3 MB every 10 s. These keep
    the newest ``PIN_HISTORY`` changes, which is all the kit's screens and tests read.
    """
    key = "pwm" if pwm else "plain"
    with _mock_lock:
        if key not in _sim_pin_classes:
            from gpiozero.pins.mock import MockPin, MockPWMPin

            base = MockPWMPin if pwm else MockPin

            def _change_state(self, value):
                changed = base._change_state(self, value)
                if len(self.states) > PIN_HISTORY:
                    del self.states[: len(self.states) - PIN_HISTORY // 2]
                return changed

            _sim_pin_classes[key] = type(f"Simulated{base.__name__}", (base,), {"_change_state": _change_state})
        return _sim_pin_classes[key]


def mock_pin_factory():
    """gpiozero's own mock pin factory (with PWM), shared per process as gpiozero expects."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    pin_class = simulated_pin_class(pwm=True)
    with _mock_lock:
        if not isinstance(Device.pin_factory, MockFactory):
            Device.pin_factory = MockFactory(pin_class=pin_class)
        return Device.pin_factory


def real_pin_factory():
    """The Pi's pin factory (lgpio on a Pi 5 / Bookworm); a clear error elsewhere."""
    os.environ.setdefault("GPIOZERO_PIN_FACTORY", "lgpio")
    try:
        from gpiozero import Device
        from gpiozero.exc import BadPinFactory

        try:
            return Device._default_pin_factory() if Device.pin_factory is None else Device.pin_factory
        except BadPinFactory as e:
            raise DeviceUnavailable(f"no GPIO here ({e}); install python3-lgpio on a Pi or simulate") from None
    except ImportError as e:
        raise DeviceUnavailable(f"gpiozero cannot load: {e}") from None
