"""Home Assistant MQTT discovery for the power sensors.

Every sensor reads the one retained ``fieldkit/<kit>/power/state`` JSON. It is available only when
both hold: the power service is alive (its health topic, whose last will says ``offline``) and the
part of the state it reads is live (``battery.available`` etc.), so Home Assistant never shows a
stale value as current.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from kit import topics

HA_STATUS = "homeassistant/status"

# (object, name, state section, key, unit, device_class, state_class)
SENSORS: list[tuple[str, str, str, str, str | None, str | None, str | None]] = [
    ("battery_voltage", "Battery voltage", "battery", "voltage", "V", "voltage", "measurement"),
    ("battery_current", "Battery current", "battery", "current", "A", "current", "measurement"),
    ("battery_power", "Battery power", "battery", "power", "W", "power", "measurement"),
    ("battery_soc", "Battery", "battery", "soc", "%", "battery", "measurement"),
    ("battery_time_left", "Battery time left", "estimate", "hours_left", "h", "duration", "measurement"),
    ("solar_voltage", "Solar voltage", "solar", "voltage", "V", "voltage", "measurement"),
    ("solar_power", "Solar power", "solar", "power", "W", "power", "measurement"),
    ("solar_yield_today", "Solar yield today", "solar", "yield_today_kwh", "kWh", "energy", "total_increasing"),
    ("charge_state", "Charge state", "solar", "charge_state", None, None, None),
    ("charger_error", "Charger error", "solar", "error", None, None, None),
    ("load_power", "Kit consumption", "load", "consumption_w", "W", "power", "measurement"),
]
# the estimate's availability follows the battery's (it is computed from it)
AVAILABILITY_SECTION = {"battery": "battery", "estimate": "battery", "solar": "solar", "load": "load"}


def _version() -> str:
    try:
        return version("fieldkit")
    except PackageNotFoundError:
        return "dev"


def device_block(kit_id: str) -> dict:
    return {"identifiers": [f"fieldkit_{kit_id}"], "name": f"Field Kit {kit_id}", "manufacturer": "Field Kit",
            "model": "Field Kit power", "sw_version": _version()}


def object_id(kit_id: str, sensor: str) -> str:
    return f"fieldkit_{kit_id}_{sensor}".replace(".", "_")


def config_topic(prefix: str, kit_id: str, sensor: str) -> str:
    return f"{prefix}/sensor/{object_id(kit_id, sensor)}/config"


def discovery_configs(kit_id: str, prefix: str = "homeassistant") -> dict[str, dict]:
    """Topic -> retained config payload, one per sensor."""
    state_topic = topics.state(kit_id, "power")
    out: dict[str, dict] = {}
    for sensor, name, section, key, unit, device_class, state_class in SENSORS:
        uid = object_id(kit_id, sensor)
        live = AVAILABILITY_SECTION[section]
        config: dict = {
            "name": name,
            "unique_id": uid,
            "default_entity_id": f"sensor.{uid}",  # HA 2025.10+: replaces the removed object_id
            "state_topic": state_topic,
            "value_template": (f"{{{{ value_json.{section}.{key} or 'none' }}}}" if unit is None
                               else f"{{{{ value_json.{section}.{key} }}}}"),
            "availability_mode": "all",
            "availability": [
                {"topic": topics.health(kit_id, "power"),
                 "value_template": "{{ 'offline' if value_json.state == 'offline' else 'online' }}"},
                {"topic": state_topic,
                 "value_template": f"{{{{ 'online' if value_json.{live}.available else 'offline' }}}}"},
            ],
            "device": device_block(kit_id),
        }
        if unit:
            config["unit_of_measurement"] = unit
        if device_class:
            config["device_class"] = device_class
        if state_class:
            config["state_class"] = state_class
        out[config_topic(prefix, kit_id, sensor)] = config
    return out
