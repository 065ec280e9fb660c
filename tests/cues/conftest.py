"""Fixtures for the cue tests: the demo sheet, a virtual clock, a simulated DMX widget on a pty."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from cues.clock import VirtualClock
from cues.documents import DEMO_SHEET
from cues.engine import Engine, Outputs
from cues.sheet import parse_sheet
from drivers.dmx import EnttecDmxPro, SimulatedDmxWidget

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def demo_sheet():
    return parse_sheet(DEMO_SHEET.read_bytes(), DEMO_SHEET.name)


@pytest.fixture
def gpio_pins():
    """gpiozero's mock pin factory, clean before and after the test."""
    from drivers.base import mock_pin_factory

    factory = mock_pin_factory()
    factory.reset()
    yield factory
    factory.reset()


class Show:
    """An engine on a virtual clock writing real ENTTEC frames into a simulated widget on a pty."""

    def __init__(self, sheet, tmp_path, wall: datetime, **engine_args):
        self.clock = VirtualClock(wall.timestamp())
        self.widget = SimulatedDmxWidget(tmp_path / "dmx-widget")
        self.dmx = EnttecDmxPro(self.widget.path)
        self.published: list[tuple[str, dict]] = []
        self.events: list[tuple[str, dict]] = []
        self.outputs = Outputs(dmx=self.dmx, publish=lambda t, p: self.published.append((t, p)),
                               sound_dir=tmp_path / "sounds", **engine_args.pop("outputs", {}))
        self.sheet = sheet
        self.engine = Engine(sheet, self.clock, self.outputs, tz=BERLIN,
                             listener=lambda k, p: self.events.append((k, p)), **engine_args)
        self.t0 = self.clock.monotonic()
        self.frames: list[tuple[float, bytes]] = []

    def capture(self) -> list[tuple[float, bytes]]:
        got = [(round(self.clock.monotonic() - self.t0, 3), f) for f in self.widget.read()]
        self.frames.extend(got)
        return got

    def run(self, seconds: float, step: float = 0.1) -> list[tuple[float, bytes]]:
        """Advance the virtual clock, ticking the engine; returns the frames the widget received."""
        got = self.capture()
        for _ in range(round(seconds / step)):
            self.clock.advance(step)
            self.engine.tick()
            got += self.capture()
        return got

    def level(self, channel_name: str) -> int:
        return self.widget.levels[self.sheet.dmx_names[channel_name] - 1]

    def levels(self, *names: str) -> tuple[int, ...]:
        return tuple(self.level(n) for n in names)

    def close(self) -> None:
        self.dmx.close()
        self.widget.close()


@pytest.fixture
def make_show(tmp_path):
    shows = []

    def make(sheet, wall: datetime | None = None, **engine_args) -> Show:
        show = Show(sheet, tmp_path, wall or datetime(2026, 6, 20, 20, 0, tzinfo=BERLIN), **engine_args)
        shows.append(show)
        return show

    yield make
    for show in shows:
        show.close()
