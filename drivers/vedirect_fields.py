"""VE.Direct fields in units a person reads: labels, scales, charge states and error codes.

Units per Victron's text protocol: V, VS, VM, VPV in mV; I, IL in mA (signed); PPV, P in W; H19-H22 in
0.01 kWh; CE in mAh; SOC in permille; TTG in minutes (-1: infinite); ``---`` means not available.
"""

from __future__ import annotations

CHARGE_STATES = {
    0: "off", 1: "low power", 2: "fault", 3: "bulk", 4: "absorption", 5: "float", 6: "storage",
    7: "equalize", 9: "inverting", 11: "power supply", 245: "starting up", 246: "repeated absorption",
    247: "auto-equalize", 248: "BatterySafe", 252: "external control",
}
MPPT_STATES = {0: "off", 1: "voltage or current limited", 2: "MPP tracker active"}
ERRORS = {
    0: "", 2: "battery voltage too high", 17: "charger too hot", 18: "charger over-current",
    19: "charger current reversed", 20: "bulk time limit exceeded", 21: "current sensor fault",
    26: "terminals overheated", 28: "power stage fault", 33: "PV voltage too high", 34: "PV current too high",
    38: "input shutdown (battery voltage too high)", 39: "input shutdown (current flowing while off)",
}
_SCALE = {  # label -> (key, divisor); None values mean "---" (not available)
    "V": ("battery_v", 1000), "VS": ("aux_v", 1000), "VM": ("mid_v", 1000), "VPV": ("solar_v", 1000),
    "I": ("battery_a", 1000), "IL": ("load_a", 1000), "PPV": ("solar_w", 1), "P": ("battery_w", 1),
    "CE": ("consumed_ah", 1000), "SOC": ("soc_percent", 10), "TTG": ("ttg_minutes", 1),
    "H19": ("yield_total_kwh", 100), "H20": ("yield_today_kwh", 100), "H21": ("max_power_today_w", 1),
    "T": ("temperature_c", 1),
}


def decode(fields: dict[str, str]) -> dict[str, object]:
    """Turn raw labels into units a person reads; unknown or unparsable values are left out."""
    out: dict[str, object] = {}
    for label, value in fields.items():
        if label in _SCALE:
            key, div = _SCALE[label]
            if value == "---":
                out[key] = None
                continue
            try:
                number = int(value)
            except ValueError:
                continue
            out[key] = number if div == 1 else number / div
        elif label in ("CS", "MPPT", "ERR"):
            try:
                code = int(value)
            except ValueError:
                continue
            table = {"CS": CHARGE_STATES, "MPPT": MPPT_STATES, "ERR": ERRORS}[label]
            name = {"CS": "charge_state", "MPPT": "mppt", "ERR": "error"}[label]
            out[name + "_code"] = code
            out[name] = table.get(code, f"code {code}")
        elif label == "LOAD":
            out["load_on"] = value.upper() == "ON"
        elif label in ("PID", "FW", "SER#", "BMV"):
            out[{"PID": "product_id", "FW": "firmware", "SER#": "serial", "BMV": "model"}[label]] = value
    if out.get("ttg_minutes") == -1:
        out["ttg_minutes"] = None  # -1: infinite (charging)
    return out


def device_kind(fields: dict[str, str]) -> str:
    if "PPV" in fields or "VPV" in fields:
        return "charger"
    if "SOC" in fields or "CE" in fields or "BMV" in fields:
        return "monitor"
    return "unknown"
