"""The power page and API through Flask's test client, fed by a running power service over the broker."""

from __future__ import annotations

import re

import pytest

from kit.testing import wait_for


@pytest.fixture
def client(power_service, kit_env):
    from kit.config import load_config
    from kit.service import make_context
    from kit.web.app import create_app

    ctx = make_context("web", load_config())
    assert ctx.bus.start(wait=5)
    app = create_app(ctx)
    app.testing = True
    c = app.test_client()
    yield c
    ctx.bus.stop()
    ctx.db.close()


def sign_in(client, pin):
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    client.post("/login", data={"pin": pin, "csrf_token": token})


def test_state_api_is_live_and_lead_only(client, kit_env):
    assert client.get("/api/v1/power/state").status_code == 401
    sign_in(client, kit_env["pins"]["door"])
    assert client.get("/api/v1/power/state").status_code == 403
    client.post("/logout", data={})
    sign_in(client, kit_env["pins"]["lead"])
    state = wait_for(lambda: (s := client.get("/api/v1/power/state").json)["live"] and s, 10, what="live state")
    assert 80 <= state["battery"]["soc"] <= 90 and state["solar"]["available"]
    assert state["estimate"]["hours_left"] is None or state["estimate"]["hours_left"] > 0


def test_history_api_and_bad_since(client, kit_env, power_service):
    sign_in(client, kit_env["pins"]["lead"])
    wait_for(lambda: power_service.service.history.rows_written >= 2, 10, what="history rows")
    data = client.get("/api/v1/power/history?since=-0.1h").json
    assert data["resolution"] == "fine" and len(data["samples"]) >= 2
    assert all(80 <= s["soc"] <= 90 for s in data["samples"])
    older = client.get("/api/v1/power/history?since=-100h").json
    assert older["resolution"] == "coarse" and len(older["samples"]) >= 1
    for bad in ("yesterday", "nan", "9e99"):
        r = client.get(f"/api/v1/power/history?since={bad}")
        assert r.status_code == 400 and r.json["code"] == "bad_since"
    assert client.get("/api/v1/power/history?since=2020-01-01T00:00:00").status_code == 200


def test_power_page_ships_its_own_chart_and_no_internet_assets(client, kit_env):
    sign_in(client, kit_env["pins"]["lead"])
    html = client.get("/power").get_data(as_text=True)
    assert 'id="power-chart"' in html and "/power/static/power/power.js" in html
    js = client.get("/power/static/power/power.js").get_data(as_text=True)
    assert "createElementNS" in js and "at this load" in js
    for text in (html, js):
        assert not re.search(r"(src|href)=[\"']https?://", text) and "cdn" not in text.lower()
    assert "the battery has not been low" in html
    spec = client.get("/api/v1/openapi.json").json
    assert "/api/v1/power/state" in spec["paths"] and "/api/v1/power/history" in spec["paths"]


def test_power_page_lists_low_power_events_from_the_ledger(client, kit_env, power_service):
    from power.lowpower import Transition

    power_service.service.on_transition(Transition("warning", "ok", 24.0, 12.81, "battery at 24%"))
    sign_in(client, kit_env["pins"]["lead"])
    html = client.get("/power").get_data(as_text=True)
    row = re.search(r'<table id="power-events">.*?</table>', html, re.S).group(0)
    assert "battery low" in row and "24 %" in row and "12.81 V" in row
