"""Under simulation a flat battery never powers off the host: the shutdown is a logged "would run"."""

from __future__ import annotations

import json
import logging

import pytest

from kit.event_codec import unpack
from kit.testing import wait_for


@pytest.fixture
def shutdown_spy(command_spy, monkeypatch):
    """A `systemctl` first on PATH that only leaves a mark: if the kit ran the command, we would see it."""
    monkeypatch.setenv("FIELDKIT_POWER_HOLD_SECONDS", "0.5")
    monkeypatch.delenv("FIELDKIT_POWER_SHUTDOWN_COMMAND", raising=False)
    return command_spy("systemctl")


def test_a_simulated_flat_battery_only_says_what_it_would_run(shutdown_spy, power_service, kit_env, db, caplog):
    from kit.bus import Bus
    from kit.config import load_config

    ctx, service = power_service.ctx, power_service.service
    assert ctx.config["power.shutdown_command"] == "systemctl poweroff" and ctx.config.simulate
    wait_for(lambda: service.snapshot.get("available"), 10, what="a live state")
    # A lead rehearses a dying battery through the simulated VE.Direct devices, over the bus.
    lead = Bus.from_config(load_config(), "lead", will=False)
    assert lead.start(wait=5)
    caplog.set_level(logging.WARNING, logger="fieldkit.power")
    try:
        lead.publish(f"fieldkit/{power_service.kit_id}/power/cmd/sim", {"battery_volts": 11.0}, qos=1)
        wait_for(lambda: "would run: systemctl poweroff" in ctx.health_detail.get("reason", ""), 20,
                 what="the health to say what would run")
    finally:
        lead.stop(clean=False)
    assert not shutdown_spy.exists(), "the shutdown command ran under simulation"
    types = [r["type"] for r in db.query("SELECT type FROM events WHERE type LIKE 'power.%' ORDER BY seq")]
    assert "power.shutdown_simulated" in types and "power.shutdown" not in types
    row = db.query_one("SELECT payload FROM events WHERE type = 'power.shutdown_simulated'")
    assert json.loads(unpack(row["payload"]))["command"] == "systemctl poweroff"
    assert ctx.health_state == "degraded"
    assert any("event=shutdown_simulated" in r.getMessage() and "would run: systemctl poweroff" in r.getMessage()
               for r in caplog.records)

    # The power page says so too.
    import re

    from kit.service import make_context
    from kit.web.app import create_app

    web = make_context("web", load_config())
    assert web.bus.start(wait=5)
    try:
        app = create_app(web)
        app.testing = True
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        client.post("/login", data={"pin": kit_env["pins"]["lead"], "csrf_token": token})
        html = client.get("/power").get_data(as_text=True)
        assert "would run: systemctl poweroff" in html
        state = wait_for(lambda: (s := client.get("/api/v1/power/state").json).get("health") and s, 10,
                         what="the state API with the reason")
        assert "would run: systemctl poweroff" in state["health"]
    finally:
        web.bus.stop()
        web.db.close()
    assert not shutdown_spy.exists()
