"""Incidents the kit logs by itself, from the real features' services on a real broker: a double admission
(once for the site, though both doors notice), the battery at critical, the receipt printer gone."""

from __future__ import annotations

import time

import pytest

from checkin.scans import record_scan
from kit import topics
from kit.sitelink import bridge_conf
from kit.testing import Mosquitto, wait_for
from lead.incidents import list_incidents, resolve
from tests.checkin.conftest import RunningService, kit_config, make_door
from tests.checkin.test_doors import LinkProxy
from tests.conftest import ServiceThread

pytestmark = pytest.mark.slow


def auto(service, rule: str) -> list[dict]:
    return [i for i in list_incidents(service.ctx.db.conn) if i["auto"] == rule]


def test_a_double_admission_after_a_partition_is_one_incident_on_both_kits(tmp_path, start_lead):
    for name in ("hub-broker", "b-broker"):
        (tmp_path / name).mkdir()
    hub = Mosquitto(workdir=tmp_path / "hub-broker").start()
    link = LinkProxy(hub.port)
    broker_b = Mosquitto(workdir=tmp_path / "b-broker", extra_conf=bridge_conf("fair", "doorB", "127.0.0.1", link.port)).start()
    services = []
    try:
        config_a = kit_config(tmp_path / "a", hub.port, "doorA", "fair", checkin_door_name="Door 1",
                              checkin_catchup_seconds=1, lead_catchup_seconds=1)
        config_b = kit_config(tmp_path / "b", broker_b.port, "doorB", "fair", checkin_door_name="Door 2",
                              checkin_catchup_seconds=1, lead_catchup_seconds=1)
        door_a, door_b = RunningService(config_a), RunningService(config_b)
        services += [door_a, door_b]
        lead_a, lead_b = start_lead(config_a), start_lead(config_b)
        helper = make_door(config_a, door_a.ctx.db)
        make_door(config_b, door_b.ctx.db)
        wait_for(lambda: door_a.ctx.bus.is_connected and door_b.ctx.bus.is_connected, 10, what="both doors connected")

        link.cut()  # the doors cannot see each other: both admit the same ticket
        twice = helper.ticket(seed="TWICE0001")
        for door in (door_a, door_b):
            d = door.door
            assert record_scan(door.ctx.db, door.ctx.ledger, d.rules, twice, keyring=d.keyring, source="test")[
                "verdict"] == "admit"
        time.sleep(1.0)
        assert auto(lead_a, "double_admission") == [] and auto(lead_b, "double_admission") == []

        link.heal()  # each door learns of the other's admission: both notice, the site has one incident
        wait_for(lambda: auto(lead_a, "double_admission") and auto(lead_b, "double_admission"), 30,
                 what="the double admission on both kits' boards")
        time.sleep(3.0)  # both kits' own logs of it cross over the link
        on_a, on_b = auto(lead_a, "double_admission"), auto(lead_b, "double_admission")
        assert len(on_a) == 1 and len(on_b) == 1 and on_a[0]["id"] == on_b[0]["id"]
        incident = on_a[0]
        assert incident["category"] == "access" and incident["by"] == "kit" and incident["state"] == "open"
        assert "Ticket admitted twice" in incident["note"]
        assert "Door 1" in incident["note"] and "Door 2" in incident["note"]
        assert incident["concerns"]  # the ticket it concerns
    finally:
        for s in services:
            s.stop()
        link.close()
        broker_b.stop()
        hub.stop()


def test_the_battery_at_critical_is_an_incident_once(tmp_path, start_lead):
    from power.service import run as run_power

    flag = tmp_path / "powered-off"
    with Mosquitto(workdir=tmp_path) as broker:
        config = kit_config(tmp_path / "k", broker.port, "stage1", "fair", power_sim_interval=0.1, power_sim_seed=5,
                            power_hold_seconds=0.5, power_shutdown_command=f"touch {flag}",
                            kit_simulate_host_actions=1)
        lead = start_lead(config)
        power = ServiceThread("power", config, run_power)
        try:
            sim = topics.cmd("stage1", "power", "sim")
            wait_for(lambda: power.ctx.bus.is_connected, 10, what="power service connected")
            time.sleep(1.0)  # the simulated controller's first blocks
            assert auto(lead, "battery_critical") == []
            power.ctx.bus.publish(sim, {"battery_volts": 11.2}, qos=1)
            wait_for(lambda: auto(lead, "battery_critical"), 20, what="the battery-critical incident")
            time.sleep(1.5)  # the level stays critical: still one incident
            [incident] = auto(lead, "battery_critical")
            assert incident["severity"] == "high" and incident["category"] == "tech"
            assert incident["note"].startswith("Battery critical on stage1") and "V" in incident["note"]
        finally:
            power.stop()


def test_a_printer_gone_longer_than_the_setting_is_an_incident_once_per_outage(tmp_path, start_lead):
    from drivers.printer import SimulatedReceiptPrinter, sim_folder
    from pos.service import run as run_pos

    with Mosquitto(workdir=tmp_path) as broker:
        config = kit_config(tmp_path / "k", broker.port, "merch1", "fair", lead_device_gone_seconds=1.5,
                            pos_printer_retry_seconds=0.2)
        sim = SimulatedReceiptPrinter(sim_folder(config))
        lead = start_lead(config)
        pos = ServiceThread("pos", config, run_pos)
        printing = topics.cmd("merch1", *topics.POS_PRINT)

        def print_something(n: int) -> None:  # a job makes the pos service try the printer at once
            pos.ctx.bus.publish(printing, {"id": f"job{n}", "source": "test", "lines": [{"text": f"line {n}"}]}, qos=1)

        try:
            # The pos service's loop runs (its first printer check is on pos/state, which the lead service heard).
            wait_for(lambda: lead.runner.incidents.devices["printer_gone"].seen_working, 15, what="the pos service up")
            print_something(1)
            wait_for(lambda: sim.outputs(), 10, what="the printer working")
            sim.set_state(online=False)
            print_something(2)
            time.sleep(1.0)  # gone, but not for long enough yet
            assert auto(lead, "printer_gone") == []
            wait_for(lambda: auto(lead, "printer_gone"), 10, what="the printer-gone incident")
            [incident] = auto(lead, "printer_gone")
            assert incident["note"].startswith("Receipt printer gone for over 1.5 s")
            assert incident["category"] == "tech" and incident["kit"] == "merch1"
            time.sleep(2.0)  # the same outage goes on: no second incident
            assert len(auto(lead, "printer_gone")) == 1

            sim.set_state(online=True)  # back, then gone again while the first is still unresolved: held
            wait_for(lambda: len(sim.outputs()) >= 2, 10, what="the waiting job printed")
            sim.set_state(online=False)
            print_something(3)
            time.sleep(3.0)
            assert len(auto(lead, "printer_gone")) == 1

            with lead.ctx.db.transaction() as conn:  # the lead resolves it; the next outage is a new incident
                resolve(conn, lead.ctx.ledger, incident["id"], by="lead", note="cable reseated")
            sim.set_state(online=True)
            wait_for(lambda: len(sim.outputs()) >= 3, 10, what="printing again")
            sim.set_state(online=False)
            print_something(4)
            wait_for(lambda: len(auto(lead, "printer_gone")) == 2, 10, what="a second outage, a second incident")
        finally:
            pos.stop()


def test_a_scanner_unplugged_longer_than_the_setting_is_an_incident(tmp_path, start_lead):
    import os

    with Mosquitto(workdir=tmp_path) as broker:
        config = kit_config(tmp_path / "k", broker.port, "door1", "fair", checkin_door_name="Door 1",
                            checkin_serial_scanner_backend="serial", checkin_hid_scanner_backend="none",
                            lead_device_gone_seconds=1.5)
        lead = start_lead(config)
        door = RunningService(config)  # waits until the (simulated, on a pseudo-terminal) scanner reads
        try:
            [scanner] = door.door.sources
            wait_for(lambda: lead.runner.incidents.devices["scanner_gone"].seen_working, 15,
                     what="the door's health ok, heard by the lead service")
            os.close(scanner._master)  # the cable comes out: the real serial reader sees the port vanish
            scanner._master = None
            time.sleep(1.0)
            assert auto(lead, "scanner_gone") == []  # not yet for long enough
            wait_for(lambda: auto(lead, "scanner_gone"), 15, what="the scanner-gone incident")
            [incident] = auto(lead, "scanner_gone")
            assert incident["note"].startswith("Door scanner gone for over 1.5 s: ")
            assert "check cable" in incident["note"] and incident["kit"] == "door1"  # the door's own words
        finally:
            door.stop()


def test_a_drop_oversold_is_one_incident_and_a_malformed_bus_message_is_ignored(tmp_path, start_lead, caplog):
    """The shapes pos and checkin publish (kit/topics.py), sent on a real broker as those services would."""
    import logging

    from kit.bus import Bus

    with Mosquitto(workdir=tmp_path) as broker:
        config = kit_config(tmp_path / "k", broker.port, "merch1", "fair")
        lead = start_lead(config)
        bus = Bus.from_config(config, "pos-voice", will=False)
        assert bus.start(wait=5)
        try:
            drop = topics.event("merch1", *topics.POS_DROP)
            oversold = {"when": "oversold", "drop": "Tour posters", "drop_id": "d-1", "sku": "POSTER", "left": 0,
                        "sold": 52, "quantity": 50, "ends_at": time.time(), "oversold": 2}
            with caplog.at_level(logging.WARNING, logger="fieldkit.lead"):
                for bad in ({**oversold, "oversold": "lots"}, {**oversold, "drop_id": 7}, {"when": "oversold"}):
                    bus.publish(drop, bad, qos=1)
                bus.publish(topics.event("merch1", *topics.CHECKIN_DOUBLE_ADMISSION), {"ticket_key": ["x"]}, qos=1)
                bus.publish(drop, {**oversold, "when": "sold_out"}, qos=1)  # a moment that is not an incident
                bus.publish(drop, oversold, qos=1)
                bus.publish(drop, oversold, qos=1)  # the same moment again (pos on another kit says it too)
                wait_for(lambda: auto(lead, "drop_oversold"), 10, what="the oversold incident")
                time.sleep(1.0)
            [incident] = auto(lead, "drop_oversold")
            assert incident["note"] == "Drop Tour posters oversold by 2: two merch kits sold the last units"
            assert incident["category"] == "payment"
            ignored = [r.getMessage() for r in caplog.records if "event=incident_auto_ignored" in r.getMessage()]
            assert len(ignored) == 4 and any("kind=double_admission" in line for line in ignored)
            assert len(list_incidents(lead.ctx.db.conn)) == 1
        finally:
            bus.stop()
