"""A lead taps "Go online" on the network page of a running kit (real browser, real web and sync services).

NetworkManager cannot run here: the kit's processes find the recording nmcli stand-in on PATH.
"""

import pytest

from kit.appliance.network import HOTSPOT, UPLINK

pytestmark = pytest.mark.browser


def test_go_online_without_hq_brings_the_hotspot_back_and_says_why(kit_factory, page, sign_in, nmcli):
    nmcli.set_state([{"name": "wlan0", "type": "wifi", "state": "connected", "connection": HOTSPOT}],
                    connections=[HOTSPOT, UPLINK])
    # The stand-in is the "host" network here: let the simulated kit drive it (a demo never would).
    kit = kit_factory(["web", "status", "sync"], extra_env={"FIELDKIT_NETWORK_UPLINK_SSID": "HomeWiFi",
                                                           "FIELDKIT_KIT_SIMULATE_HOST_ACTIONS": "1"})
    sign_in(page, kit, "lead", "/network")
    page.goto(kit.url + "network")
    assert "Hotspot on" in page.locator("#hotspot-line").inner_text()
    assert "HomeWiFi" in page.locator("main").inner_text()

    page.click("#go-online")
    # The real sync agent has no HQ to talk to: the page says so, and the radio is back on the hotspot.
    page.locator("#online-state", has_text="the sync did not go through").wait_for(timeout=30_000)
    assert "HQ" in page.locator("#online-state").inner_text(), "the sync agent's own reason is shown"
    assert not page.locator("#go-online").is_disabled()
    ups = [c[c.index("up") + 1] for c in nmcli.changes() if "up" in c]
    assert ups == [UPLINK, HOTSPOT]
    assert nmcli.device("wlan0")["connection"] == HOTSPOT
