"""Is a published power state live? Readers (web API, CLI) judge it by the service's health and age.

The retained ``power/state`` survives the service: after a crash it still says what the battery was
minutes ago. A reader shows it as live only while the service is up and the message is recent.
"""

from __future__ import annotations

SECTIONS = ("battery", "solar", "load", "estimate")


def live_view(state: dict | None, health: dict | None, now: float, stale_seconds: float,
              publish_seconds: float = 2.0) -> dict:
    if not state or "battery" not in state:
        return {"available": False, "live": False, "reason": "no reading from the power service yet",
                **{s: {"available": False} for s in SECTIONS}}
    age = max(0.0, now - float(state.get("time", 0)))
    reason = ""
    if health and health.get("state") == "offline":
        reason = "the power service is not running"
    elif age > stale_seconds + 2 * publish_seconds:
        reason = f"the last reading is {age:.0f} s old"
    if not reason:
        return {**state, "live": True, "age_s": round(age, 1), "health": (health or {}).get("reason", "")}
    # Keep the shape, drop every value: nothing old may pass for current.
    out: dict = {"available": False, "live": False, "reason": reason, "age_s": round(age, 1),
                 "time": state.get("time"), "low": state.get("low")}
    for section in SECTIONS:
        values = state.get(section) or {}
        out[section] = {k: (False if k == "available" else None) for k in values}
    return out
