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


def mock_pin_factory():
    """gpiozero's own mock pin factory (with PWM), shared per process as gpiozero expects."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    with _mock_lock:
        if not isinstance(Device.pin_factory, MockFactory):
            Device.pin_factory = MockFactory(pin_class=MockPWMPin)
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
