"""The status LED (the example driver): its patterns on gpiozero's mock pins, from the kit's status."""

import time

import pytest

from drivers.status_led import GpioStatusLED, open_status_led


@pytest.fixture
def pin_factory():
    from drivers.base import mock_pin_factory

    factory = mock_pin_factory()
    yield factory
    factory.reset()


def lit_fraction(led, seconds=1.2):
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        samples.append(led.led.pin.state)
        time.sleep(0.01)
    return sum(samples) / len(samples), len({s for s in samples})


def test_online_is_steady_and_offline_blinks(pin_factory):
    led = GpioStatusLED("GPIO17", pin_factory)
    led.show("online")
    frac, distinct = lit_fraction(led, 0.5)
    assert frac == 1.0 and distinct == 1
    led.show("offline")
    frac, distinct = lit_fraction(led)
    assert distinct == 2 and 0.2 < frac < 0.8  # fast blink: on and off, about half the time
    led.close()


def test_simulated_backend_is_chosen_when_the_kit_simulates(config, pin_factory):
    led = open_status_led(config)
    assert isinstance(led, GpioStatusLED)
    led.show("degraded")
    assert led.state == "degraded"
    led.close()


def test_status_service_drives_the_led_from_service_health(ctx, pin_factory):
    """The status service publishes the kit's status and shows it on the LED (same process, mock pins)."""
    import threading

    from kit.status import overall, run_status

    assert overall({"web": "ok", "pos": "ok"}, ["web", "pos"]) == "online"
    assert overall({"web": "ok", "pos": "degraded"}, ["web", "pos"]) == "degraded"
    assert overall({"pos": "ok"}, ["web", "pos"]) == "offline"
    thread = threading.Thread(target=run_status, args=(ctx,), daemon=True)
    thread.start()
    from kit.testing import wait_for

    statuses = []
    ctx.bus.subscribe("fieldkit/test1/status", lambda t, p: statuses.append(p["state"]))
    ctx.bus.publish("fieldkit/test1/web/health", {"state": "ok"}, retain=True)
    wait_for(lambda: statuses and statuses[-1] in ("degraded", "online"), 15, what="kit status")
    ctx.stopping.set()
    thread.join(5)
    ctx.bus.publish("fieldkit/test1/web/health", "", retain=True)
