"""The real serial reader on a pseudo-terminal: the simulated devices, garbage, unplug and replug."""

from __future__ import annotations

import os
import threading

from drivers.vedirect import VEDirectReader, decode
from drivers.vedirect_sim import SimulatedPowerKit, World
from kit.testing import wait_for


def collect(reader: VEDirectReader, stop: threading.Event, into: list) -> threading.Thread:
    def run() -> None:
        for item in reader.records(stop):
            if item is not None:
                into.append(item[0])

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_simulated_devices_are_read_through_a_pty_by_the_real_reader(tmp_path):
    sim = SimulatedPowerKit(tmp_path, World(seed=3), interval=0.05).start()
    stop = threading.Event()
    charger, monitor = [], []
    r1, r2 = VEDirectReader(sim.ports[0], timeout=0.2), VEDirectReader(sim.ports[1], timeout=0.2)
    threads = [collect(r1, stop, charger), collect(r2, stop, monitor)]
    try:
        wait_for(lambda: len(charger) >= 5 and len(monitor) >= 5, 10, what="records from both devices")
    finally:
        stop.set()
        [t.join(3) for t in threads]
        sim.stop()
        r1.close()
        r2.close()
    assert decode(charger[-1])["solar_w"] >= 0 and "charge_state" in decode(charger[-1])
    bmv = decode(monitor[-1])
    # the BMV's two parts arrive merged in one record, its HEX messages set aside
    assert 80 <= bmv["soc_percent"] <= 90 and "H1" in monitor[-1]
    assert r2.parser.stats.hex_messages >= 1 and r2.parser.stats.rejected <= 1


def test_garbage_on_the_line_is_counted_and_unplug_replug_recovers(tmp_path):
    sim = SimulatedPowerKit(tmp_path, World(seed=4), interval=0.05, monitor=False).start()
    reader = VEDirectReader(sim.ports[0], timeout=0.2, reopen_every=0.05)
    stop, records = threading.Event(), []
    thread = collect(reader, stop, records)
    try:
        wait_for(lambda: len(records) >= 3, 10, what="first records")
        sim.charger.write(os.urandom(300) + b"\r\nV\t99999\r\nChecksum\t\x00")
        wait_for(lambda: reader.parser.stats.rejected >= 1, 5, what="the corrupt block to be rejected")
        sim.unplug("charger")
        wait_for(lambda: not reader.connected, 5, what="the reader to notice the unplug")
        before = len(records)
        sim.plug("charger")
        wait_for(lambda: len(records) >= before + 3, 10, what="records after replug")
    finally:
        stop.set()
        thread.join(3)
        sim.stop()
        reader.close()
    assert all(r["V"] != "99999" for r in records)
    assert reader.reconnects >= 1
