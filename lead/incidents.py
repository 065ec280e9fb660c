"""The incident log: what went wrong tonight, who saw it, who took it on, who closed it.

Three ledger event types, shared with the site's other kits over the site link (lead/service.py):

- ``lead.incident_logged`` {"incident" (uuid), "category", "severity", "note", "concerns", "auto", "by", "at"}:
  ``concerns`` is the ticket or receipt it is about ('' if none); ``auto`` names the rule when the kit logged
  it by itself (double_admission, scanner_gone, printer_gone, battery_critical, drop_oversold), '' for a person;
- ``lead.incident_acknowledged`` {"incident", "by", "at"}: a lead has taken it on;
- ``lead.incident_resolved`` {"incident", "by", "at", "note"}: it is over (``note``: how, may be '').

Every kit keeps the site's incidents, its own and its peers', in ``lead_incidents`` and
``lead_incident_actions`` (a peer's acknowledgement may arrive before the incident it names, after a
partition: the board joins them when it reads). Notes are free text a person wrote, personal data: the
tables keep them in ``note`` columns a privacy rule can blank.
"""

from __future__ import annotations

import logging
import math
import re
import sqlite3
import uuid
from dataclasses import dataclass

from kit.ledger import Ledger

log = logging.getLogger("fieldkit.lead")

LOGGED, ACKNOWLEDGED, RESOLVED = "lead.incident_logged", "lead.incident_acknowledged", "lead.incident_resolved"
INCIDENT_TYPES = (LOGGED, ACKNOWLEDGED, RESOLVED)
CATEGORIES = {"access": "Access", "safety": "Safety", "medical": "Medical", "lost_property": "Lost property",
              "tech": "Tech", "payment": "Payment", "other": "Other"}
SEVERITIES = {"low": "Low", "medium": "Medium", "high": "High"}
AUTO_RULES = ("double_admission", "scanner_gone", "printer_gone", "battery_critical", "drop_oversold")
MAX_NOTE = 1000
MAX_BY = 40
CONCERNS_RE = re.compile(r"^[\w.:/+=-]{0,128}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
STATES = ("open", "acknowledged", "resolved")


class IncidentError(ValueError):
    """An incident cannot be logged, acknowledged or resolved as asked; the message says why."""


def category_key(value: str) -> str:
    """'lost property', 'Lost-Property' and 'lost_property' are one category; unknown ones are refused."""
    key = re.sub(r"[\s-]+", "_", str(value or "").strip().lower())
    if key not in CATEGORIES:
        raise IncidentError(f"unknown category {str(value)[:40]!r}: one of {', '.join(CATEGORIES)}")
    return key


def severity_key(value: str) -> str:
    key = str(value or "").strip().lower()
    if key not in SEVERITIES:
        raise IncidentError(f"unknown severity {str(value)[:40]!r}: one of {', '.join(SEVERITIES)}")
    return key


def _note(value: str, required: bool) -> str:
    note = str(value or "").strip()
    if required and not note:
        raise IncidentError("write a line about what happened: the note is empty")
    if len(note) > MAX_NOTE:
        raise IncidentError(f"the note is {len(note)} characters; at most {MAX_NOTE}")
    return note


# --- recording (this kit's own: ledger event and table row in the caller's transaction) ----------------

def log_incident(conn: sqlite3.Connection, ledger: Ledger, *, category: str, severity: str, note: str,
                 concerns: str = "", by: str, auto: str = "", incident: str | None = None) -> dict:
    """Log one incident; ``incident`` (a uuid) is given by the kit's own rules so that two kits that see the
    same double admission log it once. Returns the incident as the board shows it."""
    payload = {"incident": incident or str(uuid.uuid4()), "category": category_key(category),
               "severity": severity_key(severity), "note": _note(note, True), "concerns": _concerns(concerns),
               "auto": auto if auto in AUTO_RULES else "", "by": str(by)[:MAX_BY], "at": round(ledger.clock.time(), 3)}
    if conn.execute("SELECT 1 FROM lead_incidents WHERE id = ?", (payload["incident"],)).fetchone():
        raise IncidentError(f"incident {payload['incident']} is logged already")
    event = ledger.append(conn, LOGGED, payload)
    _insert_incident(conn, ledger.kit_id, event.hlc, payload)
    log.info("event=incident_logged incident=%s category=%s severity=%s auto=%s by=%s", payload["incident"],
             payload["category"], payload["severity"], payload["auto"] or "-", payload["by"])
    return get_incident(conn, payload["incident"])


def _concerns(value: str) -> str:
    concerns = str(value or "").strip()
    if not CONCERNS_RE.match(concerns):
        raise IncidentError("a ticket or receipt code is at most 128 letters, digits or -_.:/+=")
    return concerns


def find_incident(conn: sqlite3.Connection, ref: str) -> str:
    """The incident's id from its id or the first characters of it (8 are shown); refused when unknown."""
    ref = str(ref or "").strip().lower()
    if len(ref) < 4 or not re.match(r"^[0-9a-f-]+$", ref):
        raise IncidentError(f"no incident {ref[:40]!r}: give its number as `fieldkit incident list` shows it")
    rows = [r[0] for r in conn.execute("SELECT id FROM lead_incidents WHERE id LIKE ? || '%' LIMIT 2", (ref,))]
    if not rows:
        raise IncidentError(f"no incident {ref[:40]!r} on this kit (`fieldkit incident list` shows them)")
    if len(rows) > 1:
        raise IncidentError(f"{ref!r} names more than one incident: give more of its number")
    return rows[0]


def acknowledge(conn: sqlite3.Connection, ledger: Ledger, ref: str, *, by: str) -> dict:
    incident = get_incident(conn, find_incident(conn, ref))
    if incident["state"] == "resolved":
        raise IncidentError(f"incident {incident['short']} is resolved already ({incident['resolved']['by']})")
    if incident["acknowledged"]:
        a = incident["acknowledged"]
        raise IncidentError(f"incident {incident['short']} is acknowledged already ({a['by']} at {a['kit']})")
    return _act(conn, ledger, ACKNOWLEDGED, incident["id"], by, "")


def resolve(conn: sqlite3.Connection, ledger: Ledger, ref: str, *, by: str, note: str = "") -> dict:
    incident = get_incident(conn, find_incident(conn, ref))
    if incident["state"] == "resolved":
        raise IncidentError(f"incident {incident['short']} is resolved already ({incident['resolved']['by']})")
    return _act(conn, ledger, RESOLVED, incident["id"], by, _note(note, False))


def _act(conn, ledger: Ledger, type_: str, incident: str, by: str, note: str) -> dict:
    payload = {"incident": incident, "by": str(by)[:MAX_BY], "at": round(ledger.clock.time(), 3)}
    if type_ == RESOLVED:
        payload["note"] = note
    event = ledger.append(conn, type_, payload)
    _insert_action(conn, event.id, ledger.kit_id, event.hlc, type_, payload)
    log.info("event=%s incident=%s by=%s", type_.split(".")[1], incident, payload["by"])
    return get_incident(conn, incident)


def _insert_incident(conn, origin: str, hlc: int, p: dict) -> bool:
    cur = conn.execute(
        "INSERT OR IGNORE INTO lead_incidents (id, origin_kit, category, severity, note, concerns, auto, logged_by,"
        " logged_at, hlc) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (p["incident"], origin, p["category"], p["severity"], p["note"], p["concerns"], p["auto"], p["by"],
         float(p["at"]), hlc))
    return cur.rowcount == 1


def _insert_action(conn, event_id: str, origin: str, hlc: int, type_: str, p: dict) -> bool:
    cur = conn.execute(
        "INSERT OR IGNORE INTO lead_incident_actions (event_id, incident, action, kit, by, at, hlc, note)"
        " VALUES (?,?,?,?,?,?,?,?)",
        (event_id, p["incident"], "acknowledged" if type_ == ACKNOWLEDGED else "resolved", origin, p["by"],
         float(p["at"]), hlc, p.get("note", "")))
    return cur.rowcount == 1


# --- what peers send ---------------------------------------------------------------------------------

def peer_incident_problem(type_: str, p: dict) -> str | None:
    """Why a peer's incident event is refused (the field, short), or None. As strict as an HTTP body."""
    if not isinstance(p.get("incident"), str) or not UUID_RE.match(p["incident"]):
        return "incident"
    by = p.get("by")
    if not isinstance(by, str) or not 0 < len(by) <= MAX_BY:
        return "by"
    at = p.get("at")
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at) or not 0 < at < 1e11:
        return "at"
    note = p.get("note", "")
    if not isinstance(note, str) or len(note) > MAX_NOTE or (type_ == LOGGED and not note.strip()):
        return "note"
    if type_ != LOGGED:
        return None
    if p.get("category") not in CATEGORIES:
        return "category"
    if p.get("severity") not in SEVERITIES:
        return "severity"
    if not isinstance(p.get("concerns"), str) or not CONCERNS_RE.match(p["concerns"]):
        return "concerns"
    if p.get("auto") not in ("", *AUTO_RULES):
        return "auto"
    return None


def store_peer_incident(conn: sqlite3.Connection, origin: str, event_id: str, type_: str, hlc: int, p: dict) -> bool:
    """Keep a validated peer event; False when the site holds it already (two kits logged one double admission)."""
    if type_ == LOGGED:
        return _insert_incident(conn, origin, hlc, p)
    return _insert_action(conn, event_id, origin, hlc, type_, p)


# --- reading -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Row:
    id: str
    origin_kit: str
    category: str
    severity: str
    note: str
    concerns: str
    auto: str
    logged_by: str
    logged_at: float
    hlc: int


def _actions(conn, ids: list[str] | None = None) -> dict[str, dict[str, dict]]:
    """Per incident, its first acknowledgement and first resolution (by HLC: two kits may both act offline)."""
    out: dict[str, dict[str, dict]] = {}
    sql = "SELECT incident, action, kit, by, at, note FROM lead_incident_actions"
    args: tuple = ()
    if ids is not None:
        sql += f" WHERE incident IN ({','.join('?' * len(ids))})"
        args = tuple(ids)
    for incident, action, kit, by, at, note in conn.execute(sql + " ORDER BY hlc, event_id", args):
        out.setdefault(incident, {}).setdefault(action, {"kit": kit, "by": by, "at": at, "note": note})
    return out


def _view(r: _Row, acts: dict[str, dict]) -> dict:
    acked, resolved = acts.get("acknowledged"), acts.get("resolved")
    state = "resolved" if resolved else "acknowledged" if acked else "open"
    return {"id": r.id, "short": r.id[:8], "kit": r.origin_kit, "category": r.category,
            "category_label": CATEGORIES.get(r.category, r.category), "severity": r.severity, "note": r.note,
            "concerns": r.concerns, "auto": r.auto, "by": r.logged_by, "at": r.logged_at, "state": state,
            "acknowledged": acked, "resolved": resolved}


def get_incident(conn: sqlite3.Connection, incident: str) -> dict:
    row = conn.execute("SELECT id, origin_kit, category, severity, note, concerns, auto, logged_by, logged_at, hlc"
                       " FROM lead_incidents WHERE id = ?", (incident,)).fetchone()
    if row is None:
        raise IncidentError(f"no incident {incident[:40]!r} on this kit")
    return _view(_Row(*row), _actions(conn, [incident]).get(incident, {}))


def list_incidents(conn: sqlite3.Connection, state: str | None = None, limit: int = 500) -> list[dict]:
    """The site's incidents, newest first (open ones first when no state is asked for)."""
    if state is not None and state not in STATES:
        raise IncidentError(f"unknown state {state!r}: one of {', '.join(STATES)}")
    rows = [_Row(*r) for r in conn.execute(
        "SELECT id, origin_kit, category, severity, note, concerns, auto, logged_by, logged_at, hlc FROM lead_incidents"
        " ORDER BY logged_at DESC, id LIMIT ?", (max(1, min(int(limit), 5000)),))]
    acts = _actions(conn)
    views = [_view(r, acts.get(r.id, {})) for r in rows]
    if state is not None:
        return [v for v in views if v["state"] == state]
    return sorted(views, key=lambda v: STATES.index(v["state"]))  # stable: newest first within each state


def open_auto_incident(conn: sqlite3.Connection, kit: str, rule: str) -> bool:
    """Whether this kit has an unresolved incident of its own rule ``rule`` (one outage, one incident)."""
    return conn.execute(
        "SELECT 1 FROM lead_incidents i WHERE origin_kit = ? AND auto = ? AND NOT EXISTS (SELECT 1 FROM"
        " lead_incident_actions a WHERE a.incident = i.id AND a.action = 'resolved') LIMIT 1", (kit, rule)).fetchone() \
        is not None


def auto_incident_id(*parts: object) -> str:
    """The same id on every kit for the same happening (a double admission both doors see, an oversold drop)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "fieldkit:incident:" + ":".join(str(p) for p in parts)))


def unresolved_count(conn: sqlite3.Connection) -> int:
    """Incidents of the site not yet resolved (open or acknowledged): HQ's fleet view shows it per kit."""
    return conn.execute("SELECT COUNT(*) FROM lead_incidents i WHERE NOT EXISTS (SELECT 1 FROM lead_incident_actions a"
                        " WHERE a.incident = i.id AND a.action = 'resolved')").fetchone()[0]


def erase_notes(conn: sqlite3.Connection) -> int:
    """Blank every note a person wrote (the privacy rule's part for incidents); the incidents themselves stay.

    Returns how many notes were blanked. A peer's copy arriving later is not taken again: the incident is held.
    """
    blanked = conn.execute("UPDATE lead_incidents SET note = '' WHERE note != ''").rowcount
    blanked += conn.execute("UPDATE lead_incident_actions SET note = '' WHERE note != ''").rowcount
    log.info("event=incident_notes_erased rows=%d", blanked)
    return blanked
