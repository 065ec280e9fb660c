"""The dashboard's network page and "Go online": Flask test client, real broker, nmcli stand-in."""

from __future__ import annotations

import re
import threading

import pytest

from kit.appliance.network import HOTSPOT, UPLINK
from kit.bus import Bus
from kit.testing import wait_for
from kit.web.app import create_app


@pytest.fixture
def uplink_env(kit_env, monkeypatch):
    monkeypatch.setenv("FIELDKIT_NETWORK_UPLINK_SSID", "HomeWiFi")
    monkeypatch.setenv("FIELDKIT_NETWORK_ONLINE_MINUTES", "1")
    monkeypatch.setenv("FIELDKIT_KIT_SIMULATE_HOST_ACTIONS", "1")  # the nmcli stand-in is the "host" here
    return kit_env


@pytest.fixture
def client(uplink_env, nmcli, ctx):
    nmcli.set_state([{"name": "wlan0", "type": "wifi", "state": "connected", "connection": HOTSPOT}],
                    connections=[HOTSPOT, UPLINK])
    app = create_app(ctx)
    app.testing = True
    return app.test_client()


class SyncAgentStandin:
    """Answers ``sync/cmd/now`` the way the sync agent does: on ``sync/event/...`` with the request id."""

    def __init__(self, config, nmcli, release: threading.Event):
        self.nmcli, self.release = nmcli, release
        self.radio_during_sync: list[str] = []
        self.bus = Bus.from_config(config, "sync-standin", will=False)
        self.bus.subscribe("fieldkit/test1/sync/cmd/now", self.on_now, qos=1)
        assert self.bus.start(wait=5)

    def on_now(self, _topic, msg):
        self.radio_during_sync.append(self.nmcli.device("wlan0")["connection"])

        def answer():
            self.release.wait(10)
            self.bus.publish("fieldkit/test1/sync/event/done", {"id": msg["id"], "ok": True, "uploaded": 3}, qos=1)

        threading.Thread(target=answer, daemon=True).start()


def sign_in(client, pin) -> str:
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    client.post("/login", data={"pin": pin, "csrf_token": token})
    page = client.get("/network").get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def test_network_status_shows_the_hotspot_and_no_uplink(client, uplink_env):
    sign_in(client, uplink_env["pins"]["lead"])
    r = client.get("/api/v1/network")
    assert r.status_code == 200
    assert r.json["hotspot_active"] is True and r.json["uplinks"] == []
    assert r.json["uplink_ssid"] == "HomeWiFi"
    html = client.get("/network").get_data(as_text=True)
    assert "Hotspot on" in html and "Go online" in html and "HomeWiFi" in html


def test_go_online_switches_for_the_sync_and_comes_back(client, uplink_env, nmcli, config, listen):
    states = listen("fieldkit/test1/appliance/state")
    release = threading.Event()
    agent = SyncAgentStandin(config, nmcli, release)
    try:
        token = sign_in(client, uplink_env["pins"]["lead"])
        r = client.post("/api/v1/network/online", json={}, headers={"X-CSRF-Token": token})
        assert r.status_code == 202
        wait_for(lambda: agent.radio_during_sync, 10, what="the sync request")
        again = client.post("/api/v1/network/online", json={}, headers={"X-CSRF-Token": token})
        assert again.status_code == 409 and "already" in again.json["error"]
        release.set()
        def finished() -> bool:
            seen = [p.get("state") for p in states.on("fieldkit/test1/appliance/state")]
            return "switching" in seen and "done" in seen[seen.index("switching"):]

        wait_for(finished, 10, what="the switch to finish")
    finally:
        release.set()
        agent.bus.stop(clean=False)
    assert agent.radio_during_sync == [UPLINK], "the sync ran while the onboard Wi-Fi was on the uplink"
    assert nmcli.device("wlan0")["connection"] == HOTSPOT, "the hotspot is back"
    seen = [p["state"] for p in states.on("fieldkit/test1/appliance/state")]
    seen = seen[seen.index("switching"):]  # the topic is retained: an earlier test's last state may come first
    assert seen == ["switching", "online", "returning", "hotspot", "done"]
    body = client.get("/api/v1/network").json
    assert body["online"]["state"] == "done" and "sync finished" in body["online"]["detail"]


def test_only_a_lead_may_go_online(client, uplink_env, nmcli):
    token = sign_in(client, uplink_env["pins"]["door"])
    r = client.post("/api/v1/network/online", json={}, headers={"X-CSRF-Token": token})
    assert r.status_code == 403
    assert nmcli.changes() == []


def test_without_networkmanager_the_page_says_so(client, uplink_env, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    sign_in(client, uplink_env["pins"]["lead"])
    r = client.get("/api/v1/network")
    assert r.status_code == 503 and "network-manager" in r.json["error"]


def test_go_online_under_simulation_reads_the_network_but_never_changes_it(client, uplink_env, nmcli, config, ctx,
                                                                          caplog):
    import logging

    # A demo on a laptop: the Wi-Fi is the laptop's, not the kit's (uplink_env allowed it for the others).
    ctx.config = ctx.config.with_values(kit__simulate_host_actions=False)
    assert ctx.config.simulate
    caplog.set_level(logging.WARNING, logger="fieldkit.appliance.network")
    release = threading.Event()
    release.set()
    agent = SyncAgentStandin(config, nmcli, release)
    try:
        token = sign_in(client, uplink_env["pins"]["lead"])
        assert client.post("/api/v1/network/online", json={}, headers={"X-CSRF-Token": token}).status_code == 202
        wait_for(lambda: client.get("/api/v1/network").json["online"]["state"] in ("done", "error"), 15,
                 what="the switch to finish")
    finally:
        agent.bus.stop(clean=False)
    assert nmcli.calls, "the network was still read"
    assert nmcli.changes() == [], "nmcli changed the host's network under simulation"
    assert agent.radio_during_sync == [HOTSPOT]
    assert any("would run: nmcli --wait 60 connection up" in r.getMessage() for r in caplog.records)
