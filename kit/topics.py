"""MQTT topics and payloads that more than one feature uses. A feature's private topics live in it.

All payloads are JSON objects. A payload from a door in rehearsal carries ``"rehearsal": true``.

Shared payloads (keys a consumer may rely on):

- ``checkin/event/scanned``: {"verdict", "colour" (green|red|amber), "attention": bool, "ticket_type",
  "name", "door", "reason", "seq", "rehearsal", "admitted_total"}
- ``pos/event/sale``: {"receipt", "total_cents", "currency", "items": [{"sku", "qty"}], "seq"}
- ``power/event/low``: {"level": "warning"|"critical"|"ok", "soc_percent", "voltage"} — "ok" when it recovers
- ``power/state``: retained, see power/
- ``sync/event/document``: {"kind", "path", "version", "source_version"} — a document downloaded from HQ
- ``pos/cmd/print``: {"id", "source", "lines": [{"text", "align", "bold", "size"} | {"qr": "..."} | {"cut": true}]}
- ``<feature>/health``: {"state": "ok"|"degraded"|"offline", "pid", "since", "detail"} — retained, offline is the will
- ``status``: {"state": "online"|"degraded"|"offline", "services": {name: state}} — retained
"""

from __future__ import annotations

ROOT = "fieldkit"


def health(kit: str, feature: str) -> str:
    return f"{ROOT}/{kit}/{feature}/health"


def status(kit: str) -> str:
    return f"{ROOT}/{kit}/status"


def state(kit: str, feature: str) -> str:
    return f"{ROOT}/{kit}/{feature}/state"


def event(kit: str, feature: str, name: str) -> str:
    return f"{ROOT}/{kit}/{feature}/event/{name}"


def cmd(kit: str, feature: str, name: str) -> str:
    return f"{ROOT}/{kit}/{feature}/cmd/{name}"


def site_checkin(site: str, kit: str = "+") -> str:
    return f"{ROOT}/site/{site}/checkin/{kit}"


def site_catchup(site: str, kit: str = "+") -> str:
    return f"{ROOT}/site/{site}/catchup/{kit}"


def kit_wildcard(kit: str) -> str:
    return f"{ROOT}/{kit}/#"


# Shared events, as (feature, name): use with event(kit, *CHECKIN_SCANNED).
CHECKIN_SCANNED = ("checkin", "scanned")
POS_SALE = ("pos", "sale")
POWER_LOW = ("power", "low")
SYNC_DOCUMENT = ("sync", "document")
# A reference document was imported on this kit ({"kind", "version"}): services reload their caches.
DOCUMENT_IMPORTED = ("kit", "document")
# Shared commands, as (feature, name): use with cmd(kit, *POS_PRINT).
POS_PRINT = ("pos", "print")
SYNC_NOW = ("sync", "now")
CUES_FIRE = ("cues", "fire")
CUES_STOP_ALL = ("cues", "stop_all")

SERVICES = ("web", "status", "checkin", "pos", "power", "cues", "sync")
