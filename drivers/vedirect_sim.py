"""A simulated battery, solar panel and charger that speak real VE.Direct into pseudo-terminals.

Ships in the product (demo, staff rehearsals, tests): an MPPT solar charger and a BMV battery
monitor, each on its own pseudo-terminal, read by the same ``VEDirectReader`` and parser as real
devices. The BMV sends its fields in two blocks, and now and then a HEX message in the middle of a
block, as the real one does. The world is a day curve with passing clouds and the kit's own load;
``speed`` runs simulated time faster than the wall clock, ``seed`` makes it repeatable.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
import tty
from dataclasses import dataclass
from pathlib import Path

from drivers.vedirect import hex_message

log = logging.getLogger("fieldkit.vedirect_sim")

# An "async" HEX message (command 0xA) reporting register 0xEDD5 (charger voltage), as a BMV/MPPT
# sends unasked in the middle of its text output.
ASYNC_HEX = hex_message(0xA, bytes([0xD5, 0xED, 0x00, 0x10, 0x05]))


def build_block(fields: list[tuple[str, str]], hex_after: int | None = None, hex_line: bytes = b":154\n") -> bytes:
    """A text block with a correct checksum; a HEX line inserted after field ``hex_after`` if asked."""
    body = bytearray()
    for i, (label, value) in enumerate(fields):
        body += b"\r\n" + label.encode("ascii") + b"\t" + value.encode("ascii")
        if hex_after is not None and i == hex_after:
            body += hex_line
    text_only = bytes(body).replace(hex_line, b"") if hex_after is not None else bytes(body)
    head = text_only + b"\r\nChecksum\t"
    check = (256 - sum(head) % 256) % 256
    return bytes(body) + b"\r\nChecksum\t" + bytes([check])


@dataclass
class World:
    """The physics: battery state of charge, sunlight and load, advanced in simulated seconds."""

    capacity_ah: float = 100.0
    soc: float = 0.86  # 0..1
    panel_w: float = 100.0
    load_w: float = 9.0  # the Pi, the printer idling, a router
    start_hour: float = 10.0
    seed: int | None = None
    battery_v_override: float | None = None  # a lead's rehearsal of a failing battery

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.sim_seconds = 0.0
        self.cloud = 1.0
        self.yield_today_wh = 0.0
        self.consumed_ah = 0.0
        self.solar_w = 0.0
        self.battery_a = 0.0
        self.battery_v = 13.0

    @property
    def hour(self) -> float:
        return (self.start_hour + self.sim_seconds / 3600.0) % 24.0

    def step(self, dt: float) -> None:
        self.sim_seconds += dt
        sun = max(0.0, math.sin(math.pi * (self.hour - 6.0) / 14.0)) if 6.0 <= self.hour <= 20.0 else 0.0
        # Clouds drift: a slow random walk between 0.25 (a thick cloud) and 1 (clear sky).
        self.cloud = min(1.0, max(0.25, self.cloud + self.rng.gauss(0.0, 0.05) * math.sqrt(max(dt, 1e-3))))
        charge_limit = 1.0 if self.soc < 0.98 else 0.1  # a full battery takes almost nothing
        available = self.panel_w * sun * self.cloud
        load = self.load_w * (1.0 + self.rng.uniform(-0.05, 0.05))
        self.solar_w = min(available, load + charge_limit * self.panel_w)
        self.battery_v = self.voltage()
        self.battery_a = (self.solar_w - load) / self.battery_v
        self.soc = min(1.0, max(0.0, self.soc + self.battery_a * dt / 3600.0 / self.capacity_ah))
        self.consumed_ah = -(1.0 - self.soc) * self.capacity_ah
        self.yield_today_wh += self.solar_w * dt / 3600.0
        self.battery_v = self.voltage()

    def voltage(self) -> float:
        if self.battery_v_override is not None:
            return self.battery_v_override
        # A flat LiFePO4 curve (4 cells) that drops away below 10 % and rises when charging.
        base = 12.0 + 1.2 * self.soc if self.soc > 0.1 else 10.8 + 13.2 * self.soc
        return base + 0.01 * self.battery_a + self.rng.uniform(-0.01, 0.01)

    def charger_fields(self) -> list[tuple[str, str]]:
        if self.solar_w < 0.5:
            cs, mppt = 0, 0
        elif self.soc >= 0.98:
            cs, mppt = 5, 1
        else:
            cs, mppt = 3, 2
        vpv = 0.0 if self.solar_w < 0.5 else 18.0 + 2.0 * self.cloud
        return [
            ("PID", "0xA053"), ("FW", "159"), ("SER#", "HQ2132FKSIM"),
            ("V", str(round(self.battery_v * 1000))), ("I", str(round(self.solar_w / self.battery_v * 1000))),
            ("VPV", str(round(vpv * 1000))), ("PPV", str(round(self.solar_w))), ("CS", str(cs)),
            ("MPPT", str(mppt)), ("OR", "0x00000000"), ("ERR", "0"), ("LOAD", "ON"), ("IL", "0"),
            ("H19", str(round(self.yield_today_wh / 10) + 1234)), ("H20", str(round(self.yield_today_wh / 10))),
            ("H21", str(round(self.panel_w))), ("H22", "0"), ("H23", "0"), ("HSDS", "12"),
        ]

    def monitor_parts(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        power = self.battery_v * self.battery_a
        if self.battery_a >= 0:
            ttg = "-1"
        else:
            ttg = str(min(14400, round(self.soc * self.capacity_ah / -self.battery_a * 60)))
        first = [
            ("PID", "0x203"), ("V", str(round(self.battery_v * 1000))), ("VS", "---"),
            ("I", str(round(self.battery_a * 1000))), ("P", str(round(power))),
            ("CE", str(round(self.consumed_ah * 1000))), ("SOC", str(round(self.soc * 1000))),
            ("TTG", ttg), ("Alarm", "OFF"), ("Relay", "OFF"), ("AR", "0"), ("BMV", "700"), ("FW", "0308"),
        ]
        second = [(f"H{i}", str(v)) for i, v in enumerate([-50000, -20000, -10000, 12, 5, -600000, 11800, 14600,
                                                           0, 0, 0, 0, 0, 0, 0, 1, 1200, 1100], start=1)]
        return first, second


class PseudoSerialPort:
    """One end of a simulated cable: a pseudo-terminal with a stable path (a symlink) to open.

    ``unplug()`` closes it (the reader sees its port vanish), ``plug()`` makes a new one.
    """

    def __init__(self, link: Path):
        self.link = Path(link)
        self.master: int | None = None
        self.slave: int | None = None

    def plug(self) -> None:
        self.master, self.slave = os.openpty()
        # Raw from the start: bytes written before the reader opens must not be cooked (\r -> \n).
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        tmp = self.link.with_name(self.link.name + ".tmp")
        tmp.unlink(missing_ok=True)
        os.symlink(os.ttyname(self.slave), tmp)
        os.replace(tmp, self.link)

    def unplug(self) -> None:
        self.link.unlink(missing_ok=True)
        for fd in (self.master, self.slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.master = self.slave = None

    @property
    def plugged(self) -> bool:
        return self.master is not None

    def write(self, data: bytes) -> bool:
        """Write like a serial line: when nobody reads and the buffer is full, bytes are lost."""
        if self.master is None:
            return False
        try:
            os.write(self.master, data)
            return True
        except (BlockingIOError, OSError):
            return False

    def drain(self) -> None:
        """Discard what the simulated device itself receives (a reader writing to the port)."""
        if self.master is None:
            return
        try:
            while os.read(self.master, 4096):
                pass
        except (BlockingIOError, OSError):
            pass


class SimulatedPowerKit:
    """A solar charger and a battery monitor on two pseudo-terminals, driven by a ``World``."""

    def __init__(self, directory: Path, world: World | None = None, interval: float = 1.0, speed: float = 1.0,
                 hex_every: int = 5, monitor: bool = True):
        self.world = world or World()
        self.interval = interval
        self.speed = speed
        self.hex_every = hex_every
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.charger = PseudoSerialPort(directory / "ttyVE-mppt")
        self.monitor = PseudoSerialPort(directory / "ttyVE-bmv") if monitor else None
        self.blocks_written = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def ports(self) -> list[str]:
        return [str(p.link) for p in (self.charger, self.monitor) if p is not None]

    def start(self) -> SimulatedPowerKit:
        for port in (self.charger, self.monitor):
            if port is not None:
                port.plug()
        self._thread = threading.Thread(target=self._run, name="vedirect-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for port in (self.charger, self.monitor):
            if port is not None:
                port.unplug()

    def tick(self) -> None:
        """Advance the world by one interval and send one cycle from each device."""
        with self._lock:
            self.world.step(self.interval * self.speed)
            n = self.blocks_written
            self.charger.write(build_block(self.world.charger_fields()))
            if self.monitor is not None:
                first, second = self.world.monitor_parts()
                hex_after = 3 if self.hex_every and n % self.hex_every == 0 else None
                # A HEX "async" message in the middle of the first part, as a BMV does when asked.
                self.monitor.write(build_block(first, hex_after=hex_after, hex_line=ASYNC_HEX))
                self.monitor.write(build_block(second))
            for port in (self.charger, self.monitor):
                if port is not None:
                    port.drain()
            self.blocks_written += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.tick()
            except Exception:  # the simulator must not take the service down with it
                log.exception("event=sim_tick_failed")
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def unplug(self, which: str = "charger") -> None:
        with self._lock:
            getattr(self, which).unplug()

    def plug(self, which: str = "charger") -> None:
        with self._lock:
            getattr(self, which).plug()
