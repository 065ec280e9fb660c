"""The site's incidents at HQ: one row per incident of the event, from the kits' ``lead.incident_*`` events.

Two doors that both notice one double admission log it under the same incident id (lead/incidents_auto.py):
HQ keeps it once. An acknowledgement or resolution counts from whichever kit made it, the first by time.
The event shapes are the lead feature's (lead/incidents.py); HQ reads them leniently, as uploaded.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

LOGGED, ACKNOWLEDGED, RESOLVED = "lead.incident_logged", "lead.incident_acknowledged", "lead.incident_resolved"
COLUMNS = ["logged", "kit", "category", "severity", "note", "concerns", "logged_by", "acknowledged", "resolved",
           "status"]
LABELS = {"access": "access", "safety": "safety", "medical": "medical", "lost_property": "lost property",
          "tech": "tech", "payment": "payment", "other": "other"}


def _s(value, limit: int = 1000) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _who(act: dict | None, zone: ZoneInfo) -> str:
    if not act:
        return ""
    return f"{act['at'].astimezone(zone):%H:%M} {_s(act['p'].get('by'), 40)} at {act['kit']}" + (
        f": {_s(act['p'].get('note'))}" if _s(act["p"].get("note")) else "")


def incident_rows(events, zone: ZoneInfo) -> list[list]:
    """Rows for the report (``events``: HQ's Ev records of any types), in the order incidents were logged."""
    logged: dict[str, object] = {}
    acts: dict[tuple[str, str], dict] = {}
    for ev in events:
        incident = _s(ev.p.get("incident"), 64)
        if not incident:
            continue
        if ev.type == LOGGED:
            held = logged.get(incident)
            if held is None or ev.at < held.at:
                logged[incident] = ev
        elif ev.type in (ACKNOWLEDGED, RESOLVED):
            key = (incident, ev.type)
            if key not in acts or ev.at < acts[key]["at"]:
                acts[key] = {"at": ev.at, "kit": ev.kit, "p": ev.p}
    rows = []
    # By when they were logged; two in the same instant keep the order the kits wrote them (a stable
    # sort over the events in ledger order), not the order of their random ids.
    for incident, ev in sorted(logged.items(), key=lambda kv: kv[1].at):
        p = ev.p
        acked, resolved = acts.get((incident, ACKNOWLEDGED)), acts.get((incident, RESOLVED))
        severity = _s(p.get("severity"), 20)
        status = "resolved" if resolved else "acknowledged" if acked else (
            "OPEN HIGH" if severity == "high" else "open")
        by = "the kit" if _s(p.get("auto"), 40) else _s(p.get("by"), 40)
        rows.append([_hm(ev.at, zone), ev.kit, LABELS.get(_s(p.get("category"), 40), _s(p.get("category"), 40)),
                     severity, _s(p.get("note")), _s(p.get("concerns"), 128), by, _who(acked, zone),
                     _who(resolved, zone), status])
    return rows


def _hm(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).isoformat(timespec="minutes")
