"""Appliance glue: first boot, setup slip, network mode (hotspot / uplink)."""
