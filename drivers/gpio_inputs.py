"""Sensors that trigger cues: PIR motion, buttons, beam breaks (line sensor) and light level (MCP3008).

Each sensor reports ``on_change(name, active)`` on a gpiozero thread: motion seen / gone, button
pressed / released, beam broken / whole, light level past its threshold. gpiozero samples PIR and
line sensors on its own threads; the MCP3008 is polled here. The bank keeps each sensor's state from
those edge callbacks and never reads ``is_active`` from another thread: gpiozero's sampling thread
mutates the queue ``is_active`` iterates (upstream race: "deque mutated during iteration"). In simulation the pins are gpiozero's
mock pins and the MCP3008 is ``SimulatedMCP3008``, an SPI device answering the chip's real protocol
bit by bit on the mock SPI pins.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from drivers.base import PIN_HISTORY, simulated_pin_class
from kit.threads import start_vital

log = logging.getLogger("fieldkit.sensors")

OnChange = Callable[[str, bool], None]


def _forget_old_states(pin) -> None:
    if pin is not None and len(pin.states) > PIN_HISTORY:
        del pin.states[: len(pin.states) - PIN_HISTORY // 2]


def _mock_spi_device_class():
    from gpiozero.pins.mock import MockSPIDevice

    class SimulatedMCP3008(MockSPIDevice):
        """The slave side of an MCP3008 on gpiozero's mock SPI pins (clock 11, MOSI 10, MISO 9, CE0 8).

        Protocol: start bit, single/diff bit, 3 channel bits, then the chip clocks out a null bit
        and 10 result bits, MSB first.
        """

        def __init__(self, factory):
            previous, factory.pin_class = factory.pin_class, simulated_pin_class(pwm=False)
            try:
                super().__init__(11, 10, 9, 8, pin_factory=factory)
            finally:
                factory.pin_class = previous
            self.levels = [0.8] * 8  # daylight until a test or the demo panel says otherwise
            self.phase = "idle"

        def set_level(self, channel: int, level: float) -> None:
            self.levels[channel] = max(0.0, min(1.0, level))

        # gpiozero makes the clock and select pins MockSPIClockPin/MockSPISelectPin whatever the factory's
        # pin class, and those remember every change: each light-sensor poll clocks ~50 of them, which grew
        # a demo's cues process by ~1.5 MB a minute (bench/soak.py). Keep their history bounded as well.
        def on_clock(self):
            super().on_clock()
            _forget_old_states(self.clock_pin)

        def on_select(self):
            super().on_select()
            _forget_old_states(self.select_pin)

        def on_start(self):
            super().on_start()
            self.phase = "idle"

        def on_bit(self):
            if self.phase == "idle":
                if self.rx_buf[-1]:
                    self.phase, self.rx_buf = "mode", []
            elif self.phase == "mode":
                self.phase, self.rx_buf = ("single" if self.rx_buf[-1] else "diff"), []
            elif self.phase in ("single", "diff"):
                if len(self.rx_buf) == 3:
                    self.tx_word(round(self.levels[self.rx_word()] * 1023), 12)
                    self.phase = "result"
            elif self.phase == "result" and not self.tx_buf:
                self.phase, self.rx_buf = "idle", []

    return SimulatedMCP3008


class SensorBank:
    def __init__(self, sensors: dict, pin_factory, on_change: OnChange, poll_seconds: float = 0.2):
        """``sensors``: name → cues.sheet.Sensor. Sensors that cannot be opened are listed in ``problems``."""
        from gpiozero import MCP3008, Button, LineSensor, MotionSensor
        from gpiozero.exc import GPIOZeroError
        from gpiozero.pins.mock import MockFactory

        self.factory = pin_factory
        self.on_change = on_change
        self.devices: dict = {}
        self.problems: dict[str, str] = {}
        self.simulated_adc = None
        self._analog: dict[str, tuple] = {}  # name -> (device, sensor, last active)
        self._active: dict[str, bool] = {}  # name -> state, written only by the edge callbacks
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        for name, s in sensors.items():
            try:
                if s.kind == "motion":
                    device = MotionSensor(s.pin, pin_factory=pin_factory)
                    device.when_motion, device.when_no_motion = self._edge(name, True), self._edge(name, False)
                elif s.kind == "button":
                    device = Button(s.pin, pin_factory=pin_factory)
                    device.when_pressed, device.when_released = self._edge(name, True), self._edge(name, False)
                elif s.kind == "beam":
                    device = LineSensor(s.pin, pin_factory=pin_factory, queue_len=1)
                    # LineSensor is active while its output is high, which a beam receiver does when broken.
                    device.when_no_line, device.when_line = self._edge(name, True), self._edge(name, False)
                else:
                    device = self._open_adc(MCP3008, s.channel, pin_factory, MockFactory)
                    self._analog[name] = (device, s, None)
                if s.kind in ("motion", "beam"):
                    # Wait for the first sample: gpiozero takes it as the initial state and fires no
                    # event for it, so an edge in the first 0.1 s would otherwise be lost.
                    device.value  # noqa: B018
                if s.kind != "light":
                    self._active[name] = self._initial_state(device)
                self.devices[name] = device
            except (GPIOZeroError, ValueError, OSError) as e:
                self.problems[name] = f"sensor {name!r} ({s.kind}): {e}"
                log.warning("event=sensor_unavailable sensor=%s kind=%s error=%r", name, s.kind, str(e))
        if self._analog:
            self._poll_seconds = poll_seconds
            self._poller = start_vital("light-sensor", self._poll, self._stop)

    def _open_adc(self, adc_class, channel: int, factory, mock_class):
        if not isinstance(factory, mock_class):
            return adc_class(channel=channel, pin_factory=factory)

        if self.simulated_adc is None:
            self.simulated_adc = _mock_spi_device_class()(factory)
        # The mock SPI pins are plain mock pins; a PWM-capable default would refuse to share them.
        previous, factory.pin_class = factory.pin_class, simulated_pin_class(pwm=False)
        try:
            return adc_class(channel=channel, pin_factory=factory)
        finally:
            factory.pin_class = previous

    @staticmethod
    def _initial_state(device) -> bool:
        """Read once while opening, before any edge; the race can hit here too, so retry it."""
        for _ in range(5):
            try:
                return bool(device.is_active)
            except RuntimeError:
                continue
        return False

    def _edge(self, name: str, active: bool) -> Callable[[], None]:
        def changed() -> None:
            self._active[name] = active
            try:
                self.on_change(name, active)
            except Exception:  # gpiozero would print and drop it; log it the kit's way instead
                log.exception("event=sensor_handler_failed sensor=%s", name)

        return changed

    def poll_once(self) -> None:
        """Read every light sensor; report those that crossed their threshold."""
        for name, (device, sensor, last) in list(self._analog.items()):
            try:
                level = device.value
            except Exception as e:
                log.warning("event=light_sensor_read_failed sensor=%s error=%r", name, str(e))
                continue
            active = level < sensor.threshold if sensor.active_when == "below" else level > sensor.threshold
            if active != last:
                self._analog[name] = (device, sensor, active)
                if last is not None or active:
                    self._edge(name, active)()

    def _poll(self) -> None:
        while not self._stop.wait(self._poll_seconds):
            self.poll_once()

    def is_active(self, name: str) -> bool:
        if name in self._analog:
            return bool(self._analog[name][2])
        return name in self.devices and self._active.get(name, False)

    def status(self) -> dict:
        return {"available": not self.problems, "detail": "; ".join(self.problems.values()),
                "sensors": {n: self.is_active(n) for n in list(self.devices)}}

    def close(self) -> None:
        self._stop.set()
        if self._poller:
            self._poller.join(timeout=2)
        for device in self.devices.values():
            device.close()
        self.devices.clear()
        if self.simulated_adc is not None:
            self.simulated_adc.close()
