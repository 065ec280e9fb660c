"""Settings of the power feature (see kit/settings.py for the declaration rules)."""

from kit.settings import Setting

SETTINGS: list[Setting] = [
    Setting("power.source", "auto", "Where battery and solar readings come from: vedirect (serial), ina219 (I2C), "
            "sim, none, or auto (sim when simulating, else vedirect).",
            choices=("auto", "vedirect", "ina219", "sim", "none")),
    Setting("power.serial_ports", ["/dev/ttyUSB0"], "VE.Direct serial ports (a charger and/or a battery monitor), "
            "best given as /dev/serial/by-id/... paths."),
    Setting("power.stale_seconds", 10.0, "A source silent for longer than this is shown as unavailable, never as live."),
    Setting("power.publish_seconds", 2.0, "How often the retained power/state message is refreshed."),
    Setting("power.battery_capacity_wh", 1280.0, "Usable battery energy in Wh (100 Ah x 12.8 V), for the time left."),
    Setting("power.soc_floor_percent", 10.0, "State of charge counted as empty when estimating the time left."),
    Setting("power.warning_soc_percent", 25.0, "Battery low warning below this state of charge (coulomb counted)."),
    Setting("power.warning_volts", 12.4, "Battery low warning below this voltage when no state of charge is known."),
    Setting("power.warning_hysteresis_percent", 5.0, "The warning clears only this many percent above its level."),
    Setting("power.critical_volts", 11.6, "Hard floor: shut the kit down when the battery stays below this "
            "(LiFePO4: about 2.9 V per cell)."),
    Setting("power.critical_hysteresis_volts", 0.3, "A pending shutdown is called off once the voltage is this far "
            "above the floor."),
    Setting("power.hold_seconds", 20.0, "The voltage must stay below the floor this long before the kit shuts down."),
    Setting("power.shutdown_command", "systemctl poweroff", "Command run to power off cleanly (allowed by polkit "
            "on the appliance)."),
    Setting("power.history_fine_seconds", 10, "Resolution of the recent history."),
    Setting("power.history_fine_hours", 24, "How long the fine history is kept."),
    Setting("power.history_coarse_seconds", 300, "Resolution of the long history."),
    Setting("power.history_coarse_days", 31, "How long the coarse history is kept."),
    Setting("power.ha_discovery", True, "Publish Home Assistant MQTT discovery configs for the power sensors."),
    Setting("power.ha_prefix", "homeassistant", "Home Assistant's discovery prefix."),
    Setting("power.i2c_bus", 1, "I2C bus number of the INA219 (/dev/i2c-N)."),
    Setting("power.ina219_address", "0x42", "I2C address of the INA219 (0x42 on 2-cell, 0x43 on 1-cell UPS HATs)."),
    Setting("power.ina219_empty_volts", 6.0, "INA219 battery voltage counted as empty (rough state of charge)."),
    Setting("power.ina219_full_volts", 8.4, "INA219 battery voltage counted as full."),
    Setting("power.sim_speed", 1.0, "Simulated time runs this many times faster than the wall clock."),
    Setting("power.sim_seed", 0, "Seed of the simulated weather and load (0: different every run)."),
    Setting("power.sim_interval", 1.0, "Seconds between simulated VE.Direct blocks (real devices: about 1)."),
    Setting("power.sim_start_hour", 10.0, "Simulated time of day when the simulation starts."),
    Setting("power.sim_soc_percent", 86.0, "Simulated battery state of charge at start."),
    Setting("power.sim_load_watts", 9.0, "The simulated kit's own consumption in W."),
]
