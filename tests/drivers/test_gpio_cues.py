"""Cue sensors and lights on gpiozero's mock pins, including a simulated MCP3008 on the SPI pins."""

from __future__ import annotations

import threading

import pytest

from cues.sheet import Light, Sensor
from drivers.gpio_inputs import SensorBank
from drivers.lights import LightBank
from kit.testing import wait_for


@pytest.fixture
def pins():
    from drivers.base import mock_pin_factory

    factory = mock_pin_factory()
    factory.reset()
    yield factory
    factory.reset()


class Edges:
    def __init__(self):
        self.seen: list[tuple[str, bool]] = []
        self.lock = threading.Lock()

    def __call__(self, name: str, active: bool) -> None:
        with self.lock:
            self.seen.append((name, active))

    def wait(self, edge: tuple[str, bool]) -> None:
        wait_for(lambda: edge in self.seen, 3, what=f"edge {edge}")


def test_each_sensor_kind_reports_its_edges(pins):
    edges = Edges()
    sensors = {
        "pir": Sensor("pir", "motion", pin="GPIO4"),
        "red": Sensor("red", "button", pin="GPIO22"),
        "beam": Sensor("beam", "beam", pin="GPIO27"),
        "dark": Sensor("dark", "light", channel=2, threshold=0.3),
    }
    bank = SensorBank(sensors, pins, edges, poll_seconds=0.02)
    try:
        assert bank.problems == {}
        pins.pin("GPIO4").drive_high()
        edges.wait(("pir", True))
        pins.pin("GPIO4").drive_low()
        edges.wait(("pir", False))
        pins.pin("GPIO22").drive_low()  # a button pulls its pin low when pressed
        edges.wait(("red", True))
        pins.pin("GPIO27").drive_high()
        edges.wait(("beam", True))
        bank.simulated_adc.set_level(2, 0.8)
        bank.simulated_adc.set_level(2, 0.1)  # it got dark
        edges.wait(("dark", True))
        assert bank.devices["dark"].value == pytest.approx(0.1, abs=0.002)
        bank.simulated_adc.set_level(2, 0.6)
        edges.wait(("dark", False))
        assert ("pir", True) in edges.seen and edges.seen.count(("dark", True)) == 1
    finally:
        bank.close()


def test_a_pin_in_use_is_reported_not_raised(pins):
    edges = Edges()
    bank = SensorBank({"a": Sensor("a", "button", pin="GPIO5"), "b": Sensor("b", "button", pin="GPIO5")}, pins, edges)
    try:
        assert list(bank.devices) == ["a"]
        assert "GPIO5" in bank.problems["b"] or "in use" in bank.problems["b"]
    finally:
        bank.close()


def test_lights_follow_levels(pins):
    lights = {"lamp": Light("lamp", "pwm", ("GPIO18",)), "led": Light("led", "led", ("GPIO23",)),
              "rgb": Light("rgb", "rgb", ("GPIO5", "GPIO6", "GPIO13"))}
    bank = LightBank(lights, pins)
    try:
        bank.set("lamp", (0.25,))
        bank.set("led", (0.7,))
        bank.set("rgb", (1.0, 0.5, 0.0))
        assert pins.pin("GPIO18").state == 0.25
        assert pins.pin("GPIO23").state is True or pins.pin("GPIO23").state == 1
        assert (pins.pin("GPIO5").state, pins.pin("GPIO6").state, pins.pin("GPIO13").state) == (1.0, 0.5, 0.0)
        bank.set("led", (0.2,))
        assert not pins.pin("GPIO23").state
    finally:
        bank.close()


def test_sensor_state_comes_from_edges_never_from_is_active_on_another_thread(pins, monkeypatch):
    """gpiozero's sampling thread mutates the queue is_active reads ("deque mutated during iteration"):
    the cue screen's status reads the state the edge callbacks recorded, so that race cannot reach it."""
    from gpiozero import LineSensor, MotionSensor

    edges = Edges()
    sensors = {"pir": Sensor("pir", "motion", pin="GPIO4"), "beam": Sensor("beam", "beam", pin="GPIO27")}
    bank = SensorBank(sensors, pins, edges)
    try:
        pins.pin("GPIO4").drive_high()
        edges.wait(("pir", True))
        pins.pin("GPIO27").drive_high()
        edges.wait(("beam", True))
        pins.pin("GPIO4").drive_low()
        edges.wait(("pir", False))

        def racing(_self):
            raise RuntimeError("deque mutated during iteration")

        with monkeypatch.context() as m:  # is_active, read from this thread, would now fail as in the race
            for cls in (MotionSensor, LineSensor):
                m.setattr(cls, "is_active", property(racing))
            assert bank.status()["sensors"] == {"pir": False, "beam": True}
            assert bank.is_active("beam") and not bank.is_active("pir")
    finally:
        bank.close()


def test_a_simulated_light_blinking_all_night_keeps_a_bounded_history():
    """gpiozero's mock pins remember every change; the kit's simulated pins keep the newest few hundred,
    so a demo's door light blinking for hours does not grow the cues process."""
    from gpiozero import LED

    from drivers.base import PIN_HISTORY, mock_pin_factory

    factory = mock_pin_factory()
    factory.reset()
    try:
        led = LED(17, pin_factory=factory)
        for _ in range(5000):
            led.on()
            led.off()
        pin = factory.pin(17)
        assert len(pin.states) <= PIN_HISTORY
        assert not pin.states[-1].state and pin.states[-2].state  # the newest changes are kept
        led.close()
    finally:
        factory.reset()


def test_a_simulated_light_sensor_polled_all_night_keeps_a_bounded_history(pins):
    """The simulated MCP3008's clock and select pins are gpiozero's own SPI mock pins: every poll clocks ~50
    changes into them, which grew a demo's cues process by ~1.5 MB a minute until they were bounded too."""
    from drivers.base import PIN_HISTORY

    bank = SensorBank({"dark": Sensor("dark", "light", channel=2, threshold=0.3)}, pins, Edges(), poll_seconds=3600)
    try:
        for _ in range(200):
            bank.poll_once()
        clock, select = bank.simulated_adc.clock_pin, bank.simulated_adc.select_pin
        assert len(clock.states) <= PIN_HISTORY and len(select.states) <= PIN_HISTORY
        bank.simulated_adc.set_level(2, 0.1)
        edges = bank.on_change
        bank.poll_once()  # still reads the right level after the history was cut
        assert edges.seen[-1] == ("dark", True)
    finally:
        bank.close()
