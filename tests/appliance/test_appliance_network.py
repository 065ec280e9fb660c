"""Hotspot, uplink and "Go online" against the recording nmcli stand-in."""

from __future__ import annotations

import threading

import pytest

from kit.appliance.network import (
    HOTSPOT,
    UPLINK,
    NetworkError,
    Nmcli,
    configure_hotspot,
    configure_uplink,
    go_online,
    hotspot_up,
    network_status,
    split_terse,
)


def wlan0(state: str = "disconnected", connection: str = "") -> dict:
    return {"name": "wlan0", "type": "wifi", "state": state, "connection": connection}


ETH_CONNECTED = {"name": "eth0", "type": "ethernet", "state": "connected", "connection": "Wired connection 1"}


def test_terse_output_keeps_escaped_colons():
    assert split_terse(r"wlan0:wifi:connected:Cafe\: free") == ["wlan0", "wifi", "connected", "Cafe: free"]
    assert split_terse(r"a\\:b") == ["a\\", "b"]


def test_hotspot_is_configured_once_and_updated_in_place(nmcli):
    nm = Nmcli()
    configure_hotspot(nm, "door1-kit", "first password", "wlan0")
    hotspot_up(nm, "wlan0")
    configure_hotspot(nm, "door1-kit", "second password", "wlan0")
    changes = nmcli.changes()
    adds = [c for c in changes if c[:2] == ["connection", "add"]]
    assert len(adds) == 1, "a second boot must not add a second hotspot profile"
    add = adds[0]
    assert add[add.index("con-name") + 1] == HOTSPOT
    assert add[add.index("802-11-wireless.mode") + 1] == "ap"
    assert add[add.index("ipv4.method") + 1] == "shared"
    assert add[add.index("ifname") + 1] == "wlan0"
    modify = changes[-1]
    assert modify[:3] == ["connection", "modify", HOTSPOT]
    assert modify[modify.index("wifi-sec.psk") + 1] == "second password"
    assert nmcli.device("wlan0") == wlan0("connected", HOTSPOT)
    assert network_status(nm).hotspot_active


def test_a_short_hotspot_password_is_refused_before_nmcli_runs(nmcli):
    with pytest.raises(NetworkError, match="8 to 63 characters"):
        configure_hotspot(Nmcli(), "kit", "short")
    assert nmcli.calls == []


def test_uplink_profile_is_not_bound_to_the_onboard_radio(nmcli):
    configure_uplink(Nmcli(), "HomeWiFi", "home secret")
    add = nmcli.changes()[0]
    assert add[add.index("ifname") + 1] == "*", "a second Wi-Fi adapter must be able to use the uplink"
    assert add[add.index("connection.autoconnect-priority") + 1] == "0"


def _setup(nmcli, extra_devices=()):
    nm = Nmcli()
    configure_hotspot(nm, "door1-kit", "hotspot secret", "wlan0")
    configure_uplink(nm, "HomeWiFi", "home secret")
    hotspot_up(nm, "wlan0")
    state = nmcli.state
    state["devices"] += list(extra_devices)
    nmcli.set_state(state["devices"], state["connections"])
    return nm


def test_go_online_moves_the_radio_to_the_uplink_for_the_sync_and_back(nmcli):
    nm = _setup(nmcli)
    seen_during_sync = {}
    reports = []

    def run_sync(timeout: float) -> bool:
        seen_during_sync.update(nmcli.device("wlan0"))
        return True

    result = go_online(nm, uplink_ssid="HomeWiFi", run_sync=run_sync, report=lambda s, d: reports.append(s))
    assert seen_during_sync["connection"] == UPLINK, "the sync must run while the radio is on the uplink"
    ups = [c for c in nmcli.changes() if "up" in c]
    assert [c[c.index("up") + 1] for c in ups][-2:] == [UPLINK, HOTSPOT]
    assert nmcli.device("wlan0")["connection"] == HOTSPOT, "the hotspot must come back"
    assert result.switched and result.synced and result.via == "wlan0"
    assert reports == ["switching", "online", "returning", "hotspot"]


def test_any_other_uplink_is_used_without_touching_the_hotspot(nmcli):
    nm = _setup(nmcli, [ETH_CONNECTED])
    changes_before = len(nmcli.changes())
    result = go_online(nm, uplink_ssid="HomeWiFi", run_sync=lambda t: True)
    assert result.via == "eth0" and not result.switched
    assert nmcli.changes()[changes_before:] == [], "the onboard radio must stay a hotspot"
    assert nmcli.device("wlan0")["connection"] == HOTSPOT


def test_a_failed_uplink_join_says_so_and_brings_the_hotspot_back(nmcli):
    nm = _setup(nmcli)
    state = nmcli.state
    nmcli.set_state(state["devices"], state["connections"], fail_up=[UPLINK])
    synced = threading.Event()
    with pytest.raises(NetworkError, match="could not join the uplink Wi-Fi 'HomeWiFi'") as e:
        go_online(nm, uplink_ssid="HomeWiFi", run_sync=lambda t: synced.set() or True)
    assert "home secret" not in str(e.value)
    assert not synced.is_set()
    assert nmcli.changes()[-1][-4:] == ["up", HOTSPOT, "ifname", "wlan0"]
    assert nmcli.device("wlan0")["connection"] == HOTSPOT


def test_the_hotspot_comes_back_even_when_the_sync_crashes(nmcli):
    nm = _setup(nmcli)

    def broken_sync(timeout):
        raise RuntimeError("sync agent exploded")

    with pytest.raises(RuntimeError):
        go_online(nm, uplink_ssid="HomeWiFi", run_sync=broken_sync)
    assert nmcli.device("wlan0")["connection"] == HOTSPOT


def test_no_uplink_at_all_is_a_clear_error(nmcli):
    nm = _setup(nmcli)
    with pytest.raises(NetworkError, match="plug in Ethernet"):
        go_online(nm, uplink_ssid="", run_sync=lambda t: True)
    assert nmcli.device("wlan0")["connection"] == HOTSPOT


def test_a_join_is_given_the_time_nmcli_was_told_to_wait(tmp_path):
    """The web's Nmcli has a 20 s bound for status calls; ``--wait 60 connection up`` must get its 60."""
    slow = tmp_path / "nmcli"
    slow.write_text("#!/bin/sh\nsleep 2\necho joined\n")
    slow.chmod(0o755)
    nm = Nmcli(binary=str(slow), timeout=1)
    assert nm.run("--wait", "3", "connection", "up", "fieldkit-uplink") == "joined\n"
    with pytest.raises(NetworkError, match="did not answer within 1 s"):
        nm.run("device", "status")


def test_missing_nmcli_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NetworkError, match="apt-get install network-manager"):
        network_status(Nmcli())


def test_cli_hotspot_then_network_status(nmcli, kit_env, monkeypatch):
    import json

    from click.testing import CliRunner

    from kit.cli import cli

    monkeypatch.setenv("FIELDKIT_NETWORK_HOTSPOT_PASSWORD", "hotspot secret")
    monkeypatch.setenv("FIELDKIT_NETWORK_UPLINK_SSID", "HomeWiFi")
    runner = CliRunner()
    up = runner.invoke(cli, ["appliance", "hotspot"])
    assert up.exit_code == 0, up.output
    assert "Hotspot 'fieldkit-test1' is up on wlan0" in up.output
    assert "hotspot secret" not in up.output
    assert set(nmcli.state["connections"]) == {HOTSPOT, UPLINK}
    status = runner.invoke(cli, ["appliance", "network", "--json"])
    assert status.exit_code == 0 and json.loads(status.output)["hotspot_active"] is True
    offline = runner.invoke(cli, ["appliance", "network"])
    assert "hotspot: up" in offline.output and "uplink:  none" in offline.output


def test_cli_online_without_any_uplink_explains(nmcli, kit_env):
    from click.testing import CliRunner

    from kit.cli import cli

    result = CliRunner().invoke(cli, ["appliance", "online"])
    assert result.exit_code == 1
    assert "plug in Ethernet" in result.output
