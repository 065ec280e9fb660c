"""A lead opens the power page in a real browser: live numbers, a drawn chart, the low-battery banner."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.browser


def test_lead_sees_battery_solar_time_left_chart_and_a_live_low_battery_warning(kit_factory, page, sign_in, mosquitto):
    kit = kit_factory(["web", "power"], extra_env={"FIELDKIT_POWER_SIM_INTERVAL": "0.25"})
    sign_in(page, kit, "lead", "/power")
    page.goto(kit.url + "power")
    page.locator("#power-live", has_text="live").wait_for()
    page.wait_for_function("document.getElementById('battery-soc').textContent.includes('%')")
    soc = int(page.locator("#battery-soc").inner_text().split()[0])
    assert 80 <= soc <= 90
    assert "W" in page.locator("#solar-power").inner_text()
    page.wait_for_function("document.getElementById('time-left').textContent.includes('at this load')")
    # the demo's week of history is drawn by the page's own script as SVG paths
    page.wait_for_selector("#power-chart svg path.soc")
    assert len(page.locator("#power-chart svg path.soc").get_attribute("d")) > 100
    page.click("#range-buttons button[data-hours='168']")
    page.wait_for_function("document.getElementById('chart-note').textContent.includes('coarse')")

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    kit_id = "e2e" + kit.url.rstrip("/").rsplit(":", 1)[1]
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    client.publish(f"fieldkit/{kit_id}/power/cmd/sim", json.dumps({"soc_percent": 18})).wait_for_publish(5)
    page.locator("#power-low", has_text="Battery low").wait_for(timeout=15_000)  # no reload
    client.loop_stop()
    client.disconnect()
