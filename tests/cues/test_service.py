"""The cues service with a real broker, a real database, the simulated DMX widget and mock GPIO pins."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cues.demo import demo_setup
from kit import topics
from kit.event_codec import unpack
from kit.testing import wait_for


@pytest.fixture
def service(ctx, gpio_pins):
    from cues.service import CueService

    demo_setup(ctx.config, ctx.db)
    svc = CueService(ctx.config, ctx.db, ctx.bus, ctx.ledger)
    svc.start()
    yield svc
    svc.stop()


def level(svc, name: str) -> int:
    frame = svc.outputs.dmx.widget.levels
    return frame[svc.engine.sheet.dmx_names[name] - 1] if frame else 0


def ledger(ctx, prefix: str = "cues.") -> list[tuple[str, dict]]:
    rows = ctx.db.query("SELECT type, payload FROM events WHERE type LIKE ? ORDER BY seq", (prefix + "%",))
    return [(r["type"], json.loads(unpack(r["payload"]))) for r in rows]


def test_an_admission_on_the_bus_fires_a_cue_and_rehearsals_do_not(ctx, service):
    scanned = topics.event(ctx.config.kit_id, *topics.CHECKIN_SCANNED)
    ctx.bus.publish(scanned, {"verdict": "admitted", "colour": "green", "rehearsal": True, "admitted_total": 1})
    ctx.bus.publish(scanned, {"verdict": "rejected", "colour": "red", "admitted_total": 1})
    ctx.bus.publish(scanned, {"verdict": "admitted", "colour": "green", "rehearsal": False, "admitted_total": 1})
    wait_for(lambda: ("cues.fired", {"cue": "welcome", "title": "Door light blinks for every admission",
                                     "reason": "admission"}) in ledger(ctx), 5, what="the welcome cue in the ledger")
    wait_for(lambda: level(service, "door") == 0, 5, what="the door light to blink and fade")
    assert [p["cue"] for t, p in ledger(ctx) if t == "cues.fired"] == ["welcome"]
    frames = service.outputs.dmx.widget.frames
    assert any(f[5] == 255 for f in frames), "the door channel flashed full"


def test_cli_fire_and_stop_all_go_over_the_bus(ctx, service, kit_env):
    from kit.cli import cli

    runner = CliRunner()
    result = runner.invoke(cli, ["cues", "fire", "stage-motion"], env=kit_env["env"])
    assert result.exit_code == 0, result.output
    assert "fired Stage rises when someone walks up" in result.output
    wait_for(lambda: level(service, "stage_dim") == 255, 5, what="the stage to rise")
    result = runner.invoke(cli, ["cues", "stop-all"], env=kit_env["env"])
    assert result.exit_code == 0 and "stopped everything" in result.output
    result = runner.invoke(cli, ["cues", "fire", "nope"], env=kit_env["env"])
    assert result.exit_code == 1 and "no cue called 'nope'" in result.output
    result = runner.invoke(cli, ["cues", "list"], env=kit_env["env"])
    assert "  1  preshow" in result.output and "sensor stage_pir" in result.output
    wait_for(lambda: [t for t, _ in ledger(ctx)] == ["cues.fired", "cues.stop_all"], 5, what="ledger events")
    assert ledger(ctx)[1][1] == {"reason": "cli"}


def test_battery_low_from_the_power_service_dims_the_stage(ctx, service):
    service.command("fire", {"cue": "stage-motion"})
    wait_for(lambda: level(service, "stage_dim") == 255, 5, what="the stage to rise")
    ctx.bus.publish(topics.event(ctx.config.kit_id, *topics.POWER_LOW), {"level": "warning", "soc_percent": 18})
    wait_for(lambda: level(service, "stage_dim") == 102, 5, what="the stage to dim to 40 %")
    ctx.bus.publish(topics.event(ctx.config.kit_id, *topics.POWER_LOW), {"level": "ok", "soc_percent": 45})
    wait_for(lambda: level(service, "stage_dim") == 255, 5, what="the stage to come back")


def test_a_broken_sheet_is_refused_while_the_old_one_keeps_running(ctx, service):
    from cues.documents import DEMO_SHEET
    from kit.documents import DocumentError, import_document

    service.command("go", {})
    broken = DEMO_SHEET.read_text().replace('scene = "walkin"', 'scene = "walk-in"')
    with pytest.raises(DocumentError, match=r"line \d+: cue 'walkin' action 1: no scene called 'walk-in'"):
        import_document(ctx.config, ctx.db, "cues.sheet", broken.encode(), "broken.toml")
    service.maintain()
    assert service.sheet_version == 1
    wait_for(lambda: (level(service, "house"), level(service, "stage_red")) == (160, 255), 10,
             what="the old sheet's GO to run on and auto-follow into the walk-in scene")
    better = DEMO_SHEET.read_text().replace('name = "Micro-stage demo"', 'name = "Second night"')
    import_document(ctx.config, ctx.db, "cues.sheet", better.encode(), "second.toml")
    service.maintain()
    assert service.sheet_version == 2 and service.engine.sheet.name == "Second night"
    assert level(service, "house") == 160, "levels hold across a reload"


def test_mock_pins_drive_triggers_end_to_end(ctx, service, gpio_pins, listen):
    recorder = listen(topics.event(ctx.config.kit_id, "cues", "+"))
    gpio_pins.pin("GPIO4").drive_high()  # someone walks up to the stage
    wait_for(lambda: level(service, "stage_dim") == 255, 5, what="the PIR to raise the stage")
    gpio_pins.pin("GPIO27").drive_high()  # the door beam is broken
    wait_for(lambda: gpio_pins.pin("GPIO6").state == 1.0, 5, what="the status LED to turn green")
    assert gpio_pins.pin("GPIO5").state == 0.0
    gpio_pins.pin("GPIO22").drive_low()  # the red button
    recorder.wait(lambda msgs: any(t.endswith("/stop_all") and p["reason"] == "cue:panic" for t, p in msgs), 5,
                  what="STOP ALL from the panic button")
    wait_for(lambda: ("cues.stop_all", {"reason": "cue:panic"}) in ledger(ctx), 5, what="the stop in the ledger")
    fired = [p["cue"] for t, p in ledger(ctx) if t == "cues.fired"]
    assert fired == ["stage-motion", "door-beam", "panic"]


def test_state_is_published_for_the_cue_screen(ctx, service, listen):
    recorder = listen(topics.state(ctx.config.kit_id, "cues"))
    service.command("fire", {"cue": "welcome"})
    msg = recorder.wait(lambda msgs: [p for _t, p in msgs if p.get("sheet") == "Micro-stage demo"], 5, what="state")[-1]
    assert msg["standing_by"] == "preshow"
    assert msg["outputs"]["dmx"]["available"] is True
    assert {c["name"] for c in msg["cues"]} >= {"preshow", "welcome", "panic"}
    assert msg["dmx"][0] == {"channel": 1, "name": "house", "value": 0}


def test_an_unplugged_widget_degrades_health_and_is_reopened(ctx, service):
    dmx = service.outputs.dmx
    dmx.reopen_every = 0.05
    service.command("fire", {"cue": "welcome"})
    dmx.widget.unplug()
    service.command("fire", {"cue": "stage-motion"})  # the stage rises while the cable is out
    wait_for(lambda: service.health()[0] == "degraded", 5, what="degraded health")
    assert "unplugged" in service.health()[1]
    dmx.widget.plug()
    wait_for(lambda: (service.maintain(), dmx.available)[1], 5, 0.1, what="the widget to be reopened")
    assert service.health() == ("ok", "")
    wait_for(lambda: level(service, "stage_dim") == 255, 5, what="the current levels on the replugged widget")


def test_battery_condition_follows_the_power_state(ctx, service):
    ctx.bus.publish(topics.state(ctx.config.kit_id, "power"), {"battery": {"soc": 12.5, "available": True}})
    wait_for(lambda: service.engine.battery.soc_percent == 12.5, 5, what="the state of charge")
    engine = service.engine
    motion = engine.sheet.cue("stage-motion")

    def refusal():
        return engine.triggers.refusal(motion, engine.clock.monotonic(), engine.clock.wall(), engine.battery, "dim")

    assert refusal() == "battery 12 % is not above 20 %"
    ctx.bus.publish(topics.state(ctx.config.kit_id, "power"), {"battery": {"soc": 64.0, "available": True}})
    wait_for(lambda: engine.battery.soc_percent == 64.0, 5, what="the state of charge")
    assert refusal() is None


def test_acting_out_sensors_in_simulation_runs_the_real_trigger_path(ctx, service, gpio_pins):
    assert service.command("simulate", {"sensor": "panic", "active": True}) == "panic active"
    assert gpio_pins.pin("GPIO22").state == 0  # pressed: pulled low, as the real button does
    wait_for(lambda: ("cues.stop_all", {"reason": "cue:panic"}) in ledger(ctx), 5, what="STOP ALL from the button")
    service.command("simulate", {"sensor": "daylight", "active": True})
    assert service.sensors.is_active("daylight")
    with pytest.raises(KeyError):
        service.command("simulate", {"sensor": "nope"})
    assert service.status()["sensors"]["sensors"]["daylight"] is True


def test_a_sheet_downloaded_by_sync_is_imported_and_a_broken_one_refused(ctx, service, tmp_path):
    from cues.documents import DEMO_SHEET
    from kit.payloads import downloads_dir

    announce = topics.event(ctx.config.kit_id, *topics.SYNC_DOCUMENT)
    outside = tmp_path / "elsewhere.toml"
    outside.write_text(DEMO_SHEET.read_text())
    ctx.bus.publish(announce, {"kind": "cues.sheet", "path": str(outside), "version": 6})  # never read
    folder = downloads_dir(ctx.config) / "cues.sheet"
    folder.mkdir(parents=True, exist_ok=True)
    broken = folder / "from-hq-broken.toml"
    broken.write_text(DEMO_SHEET.read_text().replace('at = "22:30"', 'at = "22:70"'))
    ctx.bus.publish(announce, {"kind": "cues.sheet", "path": str(broken), "version": 7})
    wait_for(lambda: "from HQ refused" in service.problem, 5, what="the broken sheet refused")
    assert "line " in service.problem and "22:70" in service.problem
    good = folder / "from-hq.toml"
    good.write_text(DEMO_SHEET.read_text().replace('name = "Micro-stage demo"', 'name = "From HQ"'))
    ctx.bus.publish(announce, {"kind": "cues.sheet", "path": str(good), "version": 8})
    wait_for(lambda: (service.maintain(), service.engine.sheet.name == "From HQ")[1], 5, 0.1, what="the HQ sheet")
    assert service.sheet_version == 2 and service.problem == ""


def test_reloads_from_the_bus_while_the_tick_runs_never_fail_a_loop(ctx, service, caplog):
    """A burst of cues/cmd/reload (a hostile or clumsy neighbour) reopens the GPIO sensors again and again
    while the tick loop publishes their state: no loop fails and the sensors still work afterwards."""
    import logging
    import threading

    from kit import threads

    caplog.set_level(logging.INFO)
    done = threading.Event()

    def maintain_loop():
        while not done.is_set():
            service.maintain()
            service.health()

    helper = threading.Thread(target=maintain_loop, daemon=True)
    helper.start()
    for _ in range(20):
        ctx.bus.publish(topics.cmd(ctx.config.kit_id, "cues", "reload"), {"by": "burst"}, qos=1)
    wait_for(lambda: caplog.text.count("event=cue_sheet_loaded") >= 20, 20, 0.1, what="20 reloads")
    done.set()
    helper.join(5)
    assert "event=thread_failed" not in caplog.text and not threads.problems()
    assert all(t.is_alive() for t in service._threads)
    assert service.command("simulate", {"sensor": "panic", "active": True}) == "panic active"


def test_a_run_sheet_slot_entering_its_last_minute_rings_the_bell(ctx, service):
    slot = topics.event(ctx.config.kit_id, *topics.LEAD_SLOT)
    ctx.bus.publish(slot, {"when": "start", "slot": "Poetry bench", "index": 0})
    ctx.bus.publish(slot, {"when": "ending", "slot": "Poetry bench", "index": 0})
    wait_for(lambda: ("cues.fired", {"cue": "slot-ending", "title": "A bell when a run-sheet slot enters its last minute",
                                     "reason": "slot:ending"}) in ledger(ctx), 5, what="the slot-ending cue in the ledger")
    assert [p["cue"] for t, p in ledger(ctx) if t == "cues.fired"] == ["slot-ending"]  # "start" has no cue
