"""The cue screen's API through Flask's test client, with the cues service running on the same broker."""

from __future__ import annotations

import re

import pytest

from cues.demo import demo_setup
from kit.testing import wait_for
from kit.web.app import create_app


@pytest.fixture
def client(ctx):
    app = create_app(ctx)
    app.testing = True
    return app.test_client()


def sign_in(client, pin: str) -> str:
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    client.post("/login", data={"pin": pin, "csrf_token": token})
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get("/cues").get_data(as_text=True) or page).group(1)


def test_cue_api_needs_a_lead(client, kit_env):
    assert client.get("/api/v1/cues/state").status_code == 401
    assert client.post("/api/v1/cues/go").status_code == 400  # no session, so no CSRF token either
    sign_in(client, kit_env["pins"]["door"])
    assert client.get("/api/v1/cues/state").status_code == 403


def test_go_fire_and_stop_all_through_the_api(client, ctx, kit_env, gpio_pins):
    from cues.service import CueService

    token = sign_in(client, kit_env["pins"]["lead"])
    demo_setup(ctx.config, ctx.db)
    service = CueService(ctx.config, ctx.db, ctx.bus, ctx.ledger)
    service.start()
    try:
        headers = {"X-CSRF-Token": token}
        assert client.post("/api/v1/cues/fire", json={"nope": 1}, headers=headers).status_code == 400
        r = client.post("/api/v1/cues/fire", json={"cue": "nope"}, headers=headers)
        assert r.status_code == 400 and r.json["error"] == "no cue called 'nope'"
        r = client.post("/api/v1/cues/go", headers=headers)
        assert r.status_code == 200 and r.json["message"] == "fired Pre-show: house up, stage in blue"
        state = wait_for(lambda: (s := client.get("/api/v1/cues/state").json).get("standing_by") == "walkin" and s,
                         5, what="the state after GO")
        assert next(c for c in state["cues"] if c["name"] == "preshow")["state"] in ("pre-wait", "running")
        assert client.post("/api/v1/cues/stop-all", headers=headers).json["message"] == "stopped everything"
        assert client.post("/api/v1/cues/back", headers=headers).json["message"].startswith("standing by: Pre-show")
        html = client.get("/cues").get_data(as_text=True)
        assert 'id="stop-all"' in html and 'id="go"' in html
        spec = client.get("/api/v1/openapi.json").json
        assert "/api/v1/cues/fire" in spec["paths"] and "/api/v1/cues/stop-all" in spec["paths"]
    finally:
        service.stop()
