"""MQTT topics and payloads that more than one feature uses. A feature's private topics live in it.

All payloads are JSON objects. A payload from a door in rehearsal carries ``"rehearsal": true``.

Shared payloads (keys a consumer may rely on):

- ``checkin/event/scanned``: {"verdict", "colour" (green|red|amber), "attention": bool, "ticket_type",
  "name", "door", "reason", "seq", "rehearsal", "method" (scan|second_check|lead_override), "admitted_total",
  "counts": {"in", "expected", "by_type", "refused", "exits", "rehearsal_scans", "by_method"}} — the door
  page's numbers, so it need not ask for stats. "name" is joined from the kit's own list for this local
  message only: the ``checkin.scanned`` ledger event names the ticket (ticket_key, order_code), never the person
- ledger ``checkin.revoked`` {"ticket_key", "status", "reason", "door", "at", "reissued"},
  ``checkin.revocation_lifted`` {"ticket_key", "reason", "door", "at"}, ``checkin.ticket_added`` {"ticket_key",
  "replaces", "ticket_type" (its name), "order_code", "door", "at"}: shared on the site link like check-ins
- ``pos/event/drop``: {"when": "started"|"last_minute"|"sold_out"|"ended"|"oversold", "drop", "sku", "left",
  "sold", "quantity", "ends_at"} — a live drop's moments, each once
- ``pos/event/pickup_window``: {"when": "opens", "opens_at", "orders"} — pre-orders may be collected from now
- ``pos/event/sale``: {"receipt", "total_cents", "currency", "items": [{"sku", "qty"}], "seq"}
- ``lead/event/slot``: {"when": "start"|"ending"|"end", "slot" (its name), "index", "stage", "host",
  "starts_at", "ends_at" (unix seconds)} — the run-sheet's slot moments; ``lead/state`` (retained): the
  current and next slot, how far behind plan ({"runsheet", "current", "next", "behind_seconds", "at"})
- ``power/event/low``: {"level": "warning"|"critical"|"ok", "soc_percent", "voltage"} — "ok" when it recovers
- ``power/state``: retained, see power/
- ``sync/event/document``: {"kind", "path", "version", "source_version"} — a document downloaded from HQ
- ``pos/cmd/print``: {"id", "source", "lines": [{"text", "align", "bold", "size"} | {"qr": "..."} | {"cut": true}]}
- ``<feature>/health``: {"state": "ok"|"degraded"|"offline", "pid", "since", "detail"} — retained, offline is the will
- ``status``: {"state": "online"|"degraded"|"offline", "services": {name: state}} — retained
- ``site/<site>/<feature>/<kit>``: {"origin_kit", "seq", "prev", "id", "type", "hlc", "payload"} — one
  ledger event a feature shares with the site (kit/sitelink.py validates every field)
- ``site/<site>/catchup/<feature>/<kit>``: {"from": kit, "cursors": {origin_kit: highest_seq}}
"""

from __future__ import annotations

import uuid

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


# The site tree: kits of one site share events through their bridged brokers (kit/sitelink.py).
SITE_ROOT = f"{ROOT}/site"


def site_events(site: str, feature: str, kit: str = "+") -> str:
    """``fieldkit/site/<site>/<feature>/<kit>``: one kit's shared events of one feature (QoS 1)."""
    return f"{SITE_ROOT}/{site}/{feature}/{kit}"


def site_catchup(site: str, feature: str, kit: str = "+") -> str:
    """``fieldkit/site/<site>/catchup/<feature>/<kit>``: a kit asks for the feature's events it missed."""
    return f"{SITE_ROOT}/{site}/catchup/{feature}/{kit}"


def site_tree(site: str) -> str:
    """Everything of one site: what a kit's broker bridges to the hub."""
    return f"{SITE_ROOT}/{site}/#"


def kit_wildcard(kit: str) -> str:
    return f"{ROOT}/{kit}/#"


# Shared events, as (feature, name): use with event(kit, *CHECKIN_SCANNED).
CHECKIN_SCANNED = ("checkin", "scanned")
# A ticket is inside twice (a peer's admission arrived for a ticket already in): {"ticket_key", "name", "first": {"at",
# "door", "kit"}, "second": {"at", "door", "kit"}}; the lead's incident log takes it up.
CHECKIN_DOUBLE_ADMISSION = ("checkin", "double_admission")
POS_SALE = ("pos", "sale")
POWER_LOW = ("power", "low")
# A run-sheet slot moment: {"when": "start"|"ending"|"end", "slot", "index", "stage", "starts_at", "ends_at"}.
LEAD_SLOT = ("lead", "slot")
# A pickup window opened: {"when": "opens", "opens_at" (unix seconds), "orders"}.
POS_PICKUP_WINDOW = ("pos", "pickup_window")
# A live drop's moment: {"when": "started"|"last_minute"|"sold_out"|"ended"|"oversold", "drop", "drop_id", "sku",
# "left", "sold", "quantity", "ends_at", "oversold"}.
POS_DROP = ("pos", "drop")
SYNC_DOCUMENT = ("sync", "document")
# A release bundle downloaded whole into <data_dir>/updates/incoming/ ({"path", "version", "sha256"}): the kit
# picks it up as from a USB stick (kit/update/bundle.py describes the contract).
UPDATE_INCOMING = ("update", "incoming")
# A reference document was imported on this kit ({"kind", "version"}): services reload their caches.
DOCUMENT_IMPORTED = ("kit", "document")
# Shared commands, as (feature, name): use with cmd(kit, *POS_PRINT).
POS_PRINT = ("pos", "print")
# Is this ticket good, of which type? {"id", "code"} → checkin/event/verify {"id", "ok", "ticket_ref", "ticket_type"
# | "reason"}; nothing is admitted. ticket_ref is the same on every kit of the site for one ticket.
CHECKIN_VERIFY = ("checkin", "verify")
SYNC_NOW = ("sync", "now")
CUES_FIRE = ("cues", "fire")
CUES_STOP_ALL = ("cues", "stop_all")

SERVICES = ("web", "status", "checkin", "pos", "power", "cues", "sync", "lead")


def slot_drop_id(runsheet: str, slot: int) -> str:
    """The id of the live drop a run-sheet slot opens: the same on every kit (pos opens it, the numbers find it)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"fieldkit:runsheet:{runsheet}:slot:{slot}"))
