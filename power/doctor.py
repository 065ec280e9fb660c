"""`fieldkit doctor` checks of the power feature: the configured source is there and can be read."""

from __future__ import annotations

import os

from kit.doctor import Check, ok, python_module_check, warn


def checks(config) -> list[Check]:
    kind = config.backend("power.source")
    kind = "vedirect" if kind == "auto" else kind
    if kind == "none":
        return [ok("power source", "no power source configured (power.source = none)")]
    if kind == "sim":
        return [ok("power source", "simulated charger and battery monitor (VE.Direct over pseudo-terminals)")]
    if kind == "vedirect":
        out = [python_module_check("pyserial", "serial", "VE.Direct telemetry", "pip install pyserial")]
        for port in config["power.serial_ports"]:
            if not os.path.exists(port):
                out.append(warn("VE.Direct port", f"{port} is not there: no battery or solar readings",
                                "plug in the VE.Direct USB cable, or set power.serial_ports "
                                "(ls /dev/serial/by-id/); `fieldkit power probe PORT` tests one"))
            elif not os.access(port, os.R_OK):
                out.append(warn("VE.Direct port", f"{port} cannot be read by this user",
                                "add the service user to the dialout group"))
            else:
                out.append(ok("VE.Direct port", f"{port} is present"))
        return out
    # ina219
    out = [python_module_check("smbus2", "smbus2", "INA219 battery readings", "pip install smbus2")]
    from drivers.ina219 import i2c_device_path

    path = i2c_device_path(config["power.i2c_bus"])
    if not os.path.exists(path):
        out.append(warn("I2C bus", f"{path} is not there: the INA219 cannot be read",
                        "enable I2C: sudo raspi-config nonint do_i2c 0, then reboot"))
    else:
        out.append(ok("I2C bus", f"{path} is present"))
    return out
