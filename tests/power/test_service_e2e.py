"""End to end: simulated controller -> pseudo-terminal -> parser -> service -> Mosquitto -> subscriber."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from kit.testing import wait_for

SENSOR_COUNT = 11
KIT = f"pw{os.getpid()}"


@pytest.fixture
def power_env(kit_env, tmp_path):
    flag = tmp_path / "powered-off"
    # a kit id of its own: retained messages of other tests on the shared broker cannot be mistaken for ours
    env = {**kit_env["env"], "FIELDKIT_KIT_ID": KIT, "FIELDKIT_POWER_SIM_INTERVAL": "0.1", "FIELDKIT_POWER_SIM_SEED": "5",
           "FIELDKIT_POWER_HOLD_SECONDS": "1.5", "FIELDKIT_POWER_PUBLISH_SECONDS": "0.5",
           "FIELDKIT_POWER_SHUTDOWN_COMMAND": f"touch {flag}", "FIELDKIT_KIT_SIMULATE_HOST_ACTIONS": "1"}
    return env, flag


def test_service_process_publishes_discovery_state_and_shuts_down_on_a_flat_battery(power_env, listen, db):
    env, flag = power_env
    rec = listen("homeassistant/#")
    listen(f"fieldkit/{KIT}/power/#")
    proc = subprocess.Popen([sys.executable, "-m", "kit", "run", "power"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        configs = lambda: {t: p for t, p in rec.messages if t.startswith(f"homeassistant/sensor/fieldkit_{KIT}_")}  # noqa: E731
        wait_for(lambda: len(configs()) == SENSOR_COUNT, 20, what="discovery configs")
        soc = configs()[f"homeassistant/sensor/fieldkit_{KIT}_battery_soc/config"]
        assert soc["unit_of_measurement"] == "%" and soc["device_class"] == "battery"
        assert soc["state_class"] == "measurement" and soc["unique_id"] == f"fieldkit_{KIT}_battery_soc"
        assert soc["device"]["identifiers"] == [f"fieldkit_{KIT}"] and soc["default_entity_id"] == f"sensor.fieldkit_{KIT}_battery_soc"
        assert soc["availability"][0]["topic"] == f"fieldkit/{KIT}/power/health"
        assert soc["state_topic"] == f"fieldkit/{KIT}/power/state"
        energy = configs()[f"homeassistant/sensor/fieldkit_{KIT}_solar_yield_today/config"]
        assert energy["state_class"] == "total_increasing" and energy["unit_of_measurement"] == "kWh"

        state = wait_for(lambda: next((p for t, p in reversed(rec.messages) if t == f"fieldkit/{KIT}/power/state"
                                       and p["battery"]["source"] == "monitor" and p["solar"]["available"]), None),
                         20, what="a live state from the battery monitor and the charger")
        assert 80 <= state["battery"]["soc"] <= 90 and 12 < state["battery"]["voltage"] < 14
        assert state["solar"]["charge_state"] in ("bulk", "float", "off")

        # Home Assistant restarts: it says "online" (not JSON) and the configs come again.
        before = len([t for t, _ in rec.messages if t.endswith(f"{KIT}_battery_soc/config")])
        listener = _raw_client(env)
        listener.publish("homeassistant/status", b"online").wait_for_publish(5)
        wait_for(lambda: len([t for t, _ in rec.messages if t.endswith(f"{KIT}_battery_soc/config")]) > before, 10,
                 what="configs republished after homeassistant/status online")

        # A lead rehearses a dying battery: SOC falls under the warning, then the voltage under the floor.
        listener.publish(f"fieldkit/{KIT}/power/cmd/sim", b'{"soc_percent": 20}').wait_for_publish(5)
        low = lambda: [p["level"] for t, p in rec.messages if t == f"fieldkit/{KIT}/power/event/low"]  # noqa: E731
        wait_for(lambda: "warning" in low(), 15, what="the battery-low warning")
        assert not flag.exists()
        # the dashboard's power tile says so too
        wait_for(lambda: any(t.endswith("/power/health") and "battery low" in p.get("reason", "")
                             for t, p in rec.messages), 5, what="health to mention the low battery")
        listener.publish(f"fieldkit/{KIT}/power/cmd/sim", b'{"battery_volts": 11.2}').wait_for_publish(5)
        wait_for(flag.exists, 15, what="the shutdown command")
        # published before the shutdown command ran; the listener may hear it an instant after the file appears
        wait_for(lambda: low() == ["warning", "critical"], 5, what="the critical battery event")
        types = [r["type"] for r in db.query("SELECT type FROM events WHERE type LIKE 'power.%' ORDER BY seq")]
        assert types == ["power.low", "power.low", "power.shutdown"]
        assert db.scalar("SELECT COUNT(*) FROM power_history_fine") >= 1  # flushed before powering off

        # A crash leaves the last will: Home Assistant marks every sensor unavailable.
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        wait_for(lambda: any(t == f"fieldkit/{KIT}/power/health" and p.get("state") == "offline"
                             for t, p in rec.messages), 30, what="the last will")
        listener.loop_stop()
        listener.disconnect()
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)


def _raw_client(env):
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"ha-{os.getpid()}")
    client.connect("127.0.0.1", int(env["FIELDKIT_MQTT_PORT"]))
    client.loop_start()
    return client


def test_a_silent_source_is_published_as_unavailable_never_as_live(power_service, listen):
    ctx, sources = power_service.ctx, power_service.sources
    rec = listen(f"fieldkit/{power_service.kit_id}/power/state")
    listen(f"fieldkit/{power_service.kit_id}/power/health")
    states = lambda: [p for t, p in rec.messages if t.endswith("/power/state")]  # noqa: E731
    live = lambda: [p for p in states() if p["battery"]["available"]]  # noqa: E731
    wait_for(lambda: live(), 10, what="live state")
    n = len(states())
    sources.sim.unplug("monitor")
    sources.sim.unplug("charger")
    stale = wait_for(lambda: next((p for p in states()[n:] if not p["available"]), None), 10,
                     what="state marked unavailable")
    assert stale["battery"]["voltage"] is None and stale["battery"]["soc"] is None
    assert stale["solar"]["power"] is None and stale["estimate"]["hours_left"] is None
    wait_for(lambda: ctx.health_state == "degraded", 5, what="health degraded")
    assert "cannot be opened" in ctx.health_detail["reason"]
    # a lasting problem is said once, not republished on every turn of the loop
    health = [p for t, p in rec.messages if t.endswith("/power/health")]
    time.sleep(1.5)
    assert len([p for t, p in rec.messages if t.endswith("/power/health")]) - len(health) <= 1
    n = len(states())
    sources.sim.plug("charger")
    sources.sim.plug("monitor")
    wait_for(lambda: any(p["battery"]["available"] for p in states()[n:]), 10, what="live again")
    wait_for(lambda: ctx.health_state == "ok", 5, what="health ok again")


def test_a_failing_shutdown_command_is_recorded_and_shown(power_service, db):
    service, ctx = power_service.service, power_service.ctx
    wait_for(lambda: service.snapshot.get("available"), 10, what="a live state")
    ctx.config = ctx.config.with_values(power__shutdown_command="false",
                                        kit__simulate_host_actions=True)
    service.shut_down({"level": "critical", "soc_percent": 3.0, "voltage": 11.3})
    types = [r["type"] for r in db.query("SELECT type FROM events WHERE type LIKE 'power.%' ORDER BY seq")]
    assert types == ["power.shutdown", "power.shutdown_failed"]
    wait_for(lambda: ctx.health_state == "degraded", 5, what="health degraded")
    assert "shutdown command failed" in ctx.health_detail["reason"]


def test_a_locked_database_does_not_stop_the_shutdown(power_service, tmp_path):
    import sqlite3

    from kit.db import Database

    service, ctx = power_service.service, power_service.ctx
    flag = tmp_path / "off"
    ctx.config = ctx.config.with_values(power__shutdown_command=f"touch {flag}",
                                        kit__simulate_host_actions=True)
    ctx.db = Database(ctx.db.path, busy_timeout_ms=100)
    other = sqlite3.connect(ctx.db.path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock and does not let go
    try:
        service.shut_down({"level": "critical", "soc_percent": 2.0, "voltage": 11.1})
    finally:
        other.execute("ROLLBACK")
        other.close()
        ctx.db.close()
    assert flag.exists()


def test_noise_on_a_connected_port_is_explained_in_the_health_reason(power_service):
    ctx, sim = power_service.ctx, power_service.sources.sim
    wait_for(lambda: power_service.service.snapshot.get("available"), 10, what="a live state")
    # from now on the charger's blocks carry control bytes: checksums still add up, but it is not text
    world_fields = sim.world.charger_fields
    sim.world.charger_fields = lambda: [(k, v.replace("0", "0\x07")) for k, v in world_fields()]
    reason = wait_for(lambda: "no valid block" in ctx.health_detail.get("reason", "")
                      and ctx.health_detail["reason"], 10, what="the reason to name the noisy port")
    assert "ttyVE-mppt" in reason and ctx.health_state == "degraded"
    assert power_service.service.snapshot["battery"]["available"]  # the BMV still gives the battery


def test_no_power_source_configured_is_healthy_and_publishes_unavailable(ctx):
    from power.service import PowerService
    from power.sources import Sources

    ctx.config = ctx.config.with_values(power__source="none")
    sources = Sources(ctx.config).start()
    service = PowerService(ctx, sources)
    service._started -= 3600  # long past the start-up grace
    service.step()
    assert ctx.health_state == "ok" and service.snapshot["available"] is False
    sources.stop()
