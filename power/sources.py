"""The power service's sources: each device is read by its own thread into one queue.

A reading is ``(kind, decoded_fields, monotonic_time, port)`` with kind ``charger`` or ``monitor``.
In simulation the service starts the simulated charger and battery monitor on pseudo-terminals and
reads them with the same serial reader as real devices.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path

from drivers.base import DeviceUnavailable
from drivers.vedirect import VEDirectReader, decode, device_kind
from kit.threads import start_vital

log = logging.getLogger("fieldkit.power.sources")


class VEDirectSource:
    def __init__(self, port: str, out: queue.Queue, timeout: float = 1.0, stale_seconds: float = 10.0):
        self.port = port
        self.reader = VEDirectReader(port, timeout=timeout)
        self.out = out
        self.records = 0
        self.stale_seconds = stale_seconds
        self.last_record_at = time.monotonic()  # counts from the start: a grace period before complaining
        self.rejected_at_last_record = 0

    def run(self, stop: threading.Event) -> None:
        for item in self.reader.records(stop):
            if item is None:
                continue
            fields, at = item
            kind = device_kind(fields)
            if kind == "unknown":
                log.info("event=vedirect_unknown_device port=%s labels=%s", self.port, ",".join(sorted(fields))[:80])
                continue
            self.records += 1
            self.last_record_at, self.rejected_at_last_record = at, self.reader.parser.stats.rejected
            self.out.put((kind, decode(fields), at, self.port))
        self.reader.close()

    def problem(self) -> str:
        if not self.reader.connected:
            return f"VE.Direct port {self.port} cannot be opened ({self.reader.last_error or 'not there'}) — check the cable"
        quiet = time.monotonic() - self.last_record_at
        if quiet <= self.stale_seconds:
            return ""
        if self.reader.parser.stats.rejected > self.rejected_at_last_record:
            return (f"data arrives on {self.port} but no valid block (bad checksum or not text) — "
                    "a loose cable, noise, or not a VE.Direct device (`fieldkit power probe` shows more)")
        return f"no VE.Direct data on {self.port} for over {self.stale_seconds:g} s — is the device switched on?"

    def stats(self) -> dict:
        return {"port": self.port, "connected": self.reader.connected, "reconnects": self.reader.reconnects,
                **self.reader.parser.stats.as_dict()}


class INA219Source:
    def __init__(self, config, out: queue.Queue, interval: float = 1.0):
        self.config, self.out, self.interval = config, out, interval
        self.port = f"i2c-{config['power.i2c_bus']}@{config['power.ina219_address']}"
        self.error = ""
        self.chip = None

    def run(self, stop: threading.Event) -> None:
        from drivers.ina219 import open_ina219

        while not stop.is_set():
            try:
                if self.chip is None:
                    self.chip = open_ina219(self.config)
                self.out.put(("monitor", self.chip.read(), time.monotonic(), self.port))
                self.error = ""
            except DeviceUnavailable as e:
                if str(e) != self.error:
                    log.warning("event=ina219_unavailable error=%s", e)
                if self.chip is not None:  # else a chip that stops answering leaks a descriptor a second
                    self.chip.close()
                self.error, self.chip = str(e), None
            stop.wait(self.interval)

    def problem(self) -> str:
        return self.error

    def stats(self) -> dict:
        return {"port": self.port, "connected": self.chip is not None and not self.error}


class Sources:
    """Starts the configured sources (and the simulator when simulating); ``drain()`` gives readings."""

    def __init__(self, config, sim_dir: Path | None = None):
        self.config = config
        self.queue: queue.Queue = queue.Queue(maxsize=1000)
        self.stop_event = threading.Event()
        self.sim = None
        self.items: list = []
        self.kind = config.backend("power.source")
        if self.kind == "auto":
            self.kind = "vedirect"
        self._sim_dir = sim_dir or (config.data_dir / "power-sim")

    def start(self) -> Sources:
        stale = self.config["power.stale_seconds"]
        if self.kind == "sim":
            from drivers.vedirect_sim import SimulatedPowerKit, World

            c = self.config
            world = World(soc=c["power.sim_soc_percent"] / 100.0, load_w=c["power.sim_load_watts"],
                          start_hour=c["power.sim_start_hour"], seed=c["power.sim_seed"] or None)
            self.sim = SimulatedPowerKit(self._sim_dir, world, interval=c["power.sim_interval"],
                                         speed=c["power.sim_speed"]).start()
            timeout = min(1.0, max(0.1, c["power.sim_interval"]))
            self.items = [VEDirectSource(p, self.queue, timeout, stale) for p in self.sim.ports]
        elif self.kind == "vedirect":
            self.items = [VEDirectSource(p, self.queue, 1.0, stale) for p in self.config["power.serial_ports"]]
        elif self.kind == "ina219":
            self.items = [INA219Source(self.config, self.queue)]
        for item in self.items:
            # A bug met by one reading must not silence a source for the rest of the event: kit/threads.py
            # logs it, marks power degraded and runs the source again with backoff.
            start_vital(f"power-{item.port}", lambda item=item: item.run(self.stop_event), self.stop_event)
        return self

    def drain(self) -> list[tuple[str, dict, float, str]]:
        out = []
        while True:
            try:
                out.append(self.queue.get_nowait())
            except queue.Empty:
                return out

    def problems(self) -> list[str]:
        return [p for p in (item.problem() for item in self.items) if p]

    def stats(self) -> list[dict]:
        return [item.stats() for item in self.items]

    def stop(self) -> None:
        self.stop_event.set()
        if self.sim is not None:
            self.sim.stop()
