"""`fieldkit doctor` says what is missing for the configured power source, as a WARN with a fix."""

from __future__ import annotations

import json
import subprocess
import sys

from power.doctor import checks


def test_missing_serial_port_and_missing_i2c_bus_are_warnings_with_a_fix(config):
    real = config.with_values(kit__simulate=False, power__source="vedirect", power__serial_ports=["/dev/ttyVE-none"])
    found = {c.name: c for c in checks(real)}
    assert found["pyserial"].level == "OK"
    assert found["VE.Direct port"].level == "WARN" and "/dev/ttyVE-none" in found["VE.Direct port"].message
    assert "fieldkit power probe" in found["VE.Direct port"].fix
    hat = config.with_values(kit__simulate=False, power__source="ina219", power__i2c_bus=97)
    found = {c.name: c for c in checks(hat)}
    assert found["I2C bus"].level == "WARN" and "raspi-config" in found["I2C bus"].fix
    assert found["smbus2"].level == "OK"


def test_doctor_command_includes_the_power_checks(kit_env):
    env = {**kit_env["env"], "FIELDKIT_KIT_SIMULATE": "0", "FIELDKIT_POWER_SOURCE": "ina219",
           "FIELDKIT_POWER_I2C_BUS": "97"}
    r = subprocess.run([sys.executable, "-m", "kit", "doctor", "--json"], env=env, capture_output=True, text=True,
                       timeout=60)
    by_name = {c["name"]: c for c in json.loads(r.stdout)}
    assert by_name["I2C bus"]["level"] == "WARN" and "/dev/i2c-97" in by_name["I2C bus"]["message"]
