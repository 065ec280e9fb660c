"""Discovery templates rendered with Jinja2 (Home Assistant's template engine) against real snapshots."""

from __future__ import annotations

import jinja2

from power.discovery import discovery_configs
from power.state import PowerState

CHARGER = {"battery_v": 12.9, "solar_v": 19.0, "solar_w": 41, "yield_today_kwh": 0.12, "charge_state": "bulk",
           "error": "", "error_code": 0, "load_on": True, "load_a": 0.0}
MONITOR = {"battery_v": 12.9, "battery_a": -0.8, "battery_w": -10, "soc_percent": 86.0, "ttg_minutes": 600}


def render(template: str, payload: dict) -> str:
    return jinja2.Environment().from_string(template).render(value_json=payload).strip()


def test_every_sensor_renders_a_value_and_is_available_when_live():
    state = PowerState()
    state.update("charger", CHARGER, at=0.0)
    state.update("monitor", MONITOR, at=0.0)
    snap = state.snapshot(now=1.0)
    configs = discovery_configs("k1")
    assert len(configs) == 11 and all(t.startswith("homeassistant/sensor/fieldkit_k1_") for t in configs)
    health = {"state": "ok"}
    for config in configs.values():
        value = render(config["value_template"], snap)
        if "unit_of_measurement" in config:
            float(value)  # a number Home Assistant can store
        else:
            assert value and value != "None"
        assert [render(a["value_template"], health if a["topic"].endswith("/health") else snap)
                for a in config["availability"]] == ["online", "online"]
    assert render(configs["homeassistant/sensor/fieldkit_k1_battery_soc/config"]["value_template"], snap) == "86.0"
    assert render(configs["homeassistant/sensor/fieldkit_k1_charger_error/config"]["value_template"], snap) == "none"


def test_a_stale_source_or_a_dead_service_makes_sensors_unavailable():
    state = PowerState(stale_seconds=5)
    state.update("charger", CHARGER, at=0.0)
    state.update("monitor", MONITOR, at=4.0)
    snap = state.snapshot(now=7.0)  # the charger is stale, the monitor is not
    configs = discovery_configs("k1")
    solar = configs["homeassistant/sensor/fieldkit_k1_solar_power/config"]["availability"]
    battery = configs["homeassistant/sensor/fieldkit_k1_battery_voltage/config"]["availability"]
    assert render(solar[1]["value_template"], snap) == "offline"
    assert render(battery[1]["value_template"], snap) == "online"
    assert render(battery[0]["value_template"], {"state": "offline"}) == "offline"
