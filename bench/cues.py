"""Trigger-to-output latency: from a mock pin edge to the ENTTEC DMX frame readable on a pty.

Ours: gpiozero's edge callback fires the cue and the engine ticks at once, writing the frame in the
same call chain. The obvious alternative: the frame loop polls the pin each tick (30 and 100 Hz)
and fires on a change. Also shown: a PIR through gpiozero's MotionSensor, whose own 10 Hz sampling
queue sits in front of our edge path.

    .venv/bin/python bench/cues.py
"""

from __future__ import annotations

import os
import random
import select
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import percentile, print_table, write_json  # noqa: E402
from cues.clock import RealClock  # noqa: E402
from cues.engine import Engine, Outputs  # noqa: E402
from cues.sheet import parse_sheet  # noqa: E402
from drivers.base import mock_pin_factory  # noqa: E402
from drivers.dmx import EnttecDmxPro, SimulatedDmxWidget, parse_enttec  # noqa: E402
from drivers.gpio_inputs import SensorBank  # noqa: E402

SHEET = """
[dmx.channels]
stage = 1
[sensors]
button = { kind = "button", pin = "GPIO22" }
pir = { kind = "motion", pin = "GPIO4" }
[[cues]]
name = "up"
[[cues.triggers]]
kind = "sensor"
sensor = "{sensor}"
on = "active"
[[cues.actions]]
kind = "dmx"
channels = { stage = 255 }
[[cues]]
name = "down"
[[cues.triggers]]
kind = "sensor"
sensor = "{sensor}"
on = "inactive"
[[cues.actions]]
kind = "dmx"
channels = { stage = 0 }
"""


class Rig:
    def __init__(self, sensor: str, folder: Path):
        self.sheet = parse_sheet(SHEET.replace("{sensor}", sensor))
        self.widget = SimulatedDmxWidget(folder / f"widget-{sensor}")
        self.dmx = EnttecDmxPro(self.widget.path)
        self.engine = Engine(self.sheet, RealClock(), Outputs(dmx=self.dmx))
        self.engine.tick()
        self.widget.read(0.5)
        self.buffer = b""

    def wait_frame(self, level: int, timeout: float = 2.0) -> float:
        """Block until a frame with channel 1 == level is readable; returns perf_counter at that moment."""
        fd = self.widget._master
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                frames, self.buffer = parse_enttec(self.buffer + os.read(fd, 65536))
                if any(f[0] == level for f in frames):
                    return time.perf_counter()
        raise TimeoutError(f"no frame with level {level}")

    def close(self) -> None:
        self.dmx.close()
        self.widget.close()


def measure(rig: Rig, press, release, count: int) -> list[float]:
    # Random gaps (seeded) so an edge lands at any phase of a polling loop, as a real one does.
    gaps = random.Random(6)
    latencies = []
    for i in range(count):
        active = i % 2 == 0
        start = time.perf_counter()
        (press if active else release)()
        end = rig.wait_frame(255 if active else 0)
        latencies.append((end - start) * 1000)
        time.sleep(gaps.uniform(0.001, 0.035))
    return latencies


def run_edge(factory, folder: Path, count: int) -> list[float]:
    rig = Rig("button", folder)
    bank = SensorBank({"button": rig.sheet.sensors["button"]}, factory, rig.engine.sensor_event)
    pin = factory.pin("GPIO22")
    try:
        return measure(rig, pin.drive_low, pin.drive_high, count)  # a button pulls its pin low
    finally:
        bank.close()
        rig.close()


def run_polling(factory, folder: Path, count: int, rate: float) -> list[float]:
    """The alternative: read the pin in the frame loop and fire on a change."""
    rig = Rig("button", folder)
    from gpiozero import Button

    button = Button("GPIO22", pin_factory=factory)
    stop = threading.Event()

    def loop() -> None:
        last = button.is_pressed
        while not stop.wait(1 / rate):
            now = button.is_pressed
            if now != last:
                last = now
                rig.engine.sensor_event("button", now)
            rig.engine.tick()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    pin = factory.pin("GPIO22")
    try:
        return measure(rig, pin.drive_low, pin.drive_high, count)
    finally:
        stop.set()
        thread.join()
        button.close()
        rig.close()


def run_pir(factory, folder: Path, count: int) -> list[float]:
    rig = Rig("pir", folder)
    bank = SensorBank({"pir": rig.sheet.sensors["pir"]}, factory, rig.engine.sensor_event)
    pin = factory.pin("GPIO4")
    try:
        return measure(rig, pin.drive_high, pin.drive_low, count)
    finally:
        bank.close()
        rig.close()


def main() -> None:
    factory = mock_pin_factory()
    folder = Path(tempfile.mkdtemp(prefix="fk-bench-cues-"))
    runs = {}
    factory.reset()
    runs["edge callback (ours)"] = run_edge(factory, folder, 300)
    factory.reset()
    runs["poll pin at 30 Hz"] = run_polling(factory, folder, 200, 30)
    factory.reset()
    runs["poll pin at 100 Hz"] = run_polling(factory, folder, 300, 100)
    factory.reset()
    runs["PIR via MotionSensor (10 Hz sampling)"] = run_pir(factory, folder, 60)
    factory.reset()
    ours = percentile(runs["edge callback (ours)"], 50)
    rows, results = [], {}
    for name, values in runs.items():
        p50, p99 = percentile(values, 50), percentile(values, 99)
        rows.append({"path": name, "events": len(values), "p50 ms": p50, "p99 ms": p99,
                     "max ms": max(values), "p50 vs ours": p50 / ours})
        results[name] = {"events": len(values), "p50_ms": p50, "p99_ms": p99, "max_ms": max(values),
                         "p50_ratio_to_ours": p50 / ours}
    print_table("Cue trigger → DMX frame on a pty (mock pin edge to bytes readable)", rows)
    edge, poll = results["edge callback (ours)"], results["poll pin at 30 Hz"]
    headline = {"edge_p50_ms": round(edge["p50_ms"], 3), "edge_p99_ms": round(edge["p99_ms"], 2),
                "poll30_p50_ms": round(poll["p50_ms"], 1), "poll30_vs_edge_p50": round(poll["p50_ratio_to_ours"], 1)}
    write_json("cues", {"when": datetime.now().isoformat(timespec="seconds"), "headline": headline, "latency": results})


if __name__ == "__main__":
    main()
