"""The run-sheet's events: recording a lead's Next slot and Running late, reading the evening back.

Three ledger event types, shared with the site's other kits over the site link (lead/service.py):

- ``lead.runsheet_published`` {"digest", "name", "toml", "by"}: this run-sheet is the site's now
  (the newest by HLC wins on every kit);
- ``lead.slot_next`` {"runsheet", "slot", "start_at", "by"}: slot ``slot`` starts at ``start_at``;
- ``lead.running_late`` {"runsheet", "slot", "seconds", "extend", "by"}: later slots move by ``seconds``.

and two each kit records for itself, not shared: ``lead.slot_started`` / ``lead.slot_ended``
{"runsheet", "slot", "name", "stage", "at"} — when a slot began and ended, for the evening's numbers.

The run-sheet is the site's, so a peer's events count exactly like this kit's own: the evening is
folded from both (lead/schedule.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from kit.event_codec import unpack
from kit.ledger import Ledger
from lead.runsheet import MAX_BYTES, MAX_SLOTS, RunSheet, RunSheetError, parse_runsheet
from lead.schedule import Adjustment, NowNext, TimedSlot, effective_slots, now_next

log = logging.getLogger("fieldkit.lead")
PUBLISHED, NEXT, LATE = "lead.runsheet_published", "lead.slot_next", "lead.running_late"
SHARED_TYPES = (PUBLISHED, NEXT, LATE)
# Recorded by each kit's lead service when a slot starts or ends (not shared: every kit keeps its own).
SLOT_STARTED, SLOT_ENDED = "lead.slot_started", "lead.slot_ended"
MAX_LATE_SECONDS = 4 * 3600
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class LeadError(ValueError):
    """What a lead asked cannot be done now (no run-sheet, the evening is over); the message says why."""


@dataclass(frozen=True)
class Evening:
    sheet: RunSheet | None
    slots: list[TimedSlot]
    published_by: str = ""  # kit that published the current run-sheet

    def at(self, when: float) -> NowNext:
        return now_next(self.slots, when)


@dataclass(frozen=True)
class LeadEvent:
    type: str
    payload: dict
    hlc: int
    origin: str


# --- reading -----------------------------------------------------------------------------------------

def lead_events(conn: sqlite3.Connection, kit: str) -> list[LeadEvent]:
    """This kit's run-sheet events and what its peers shared, in no particular order."""
    marks = ",".join("?" * len(SHARED_TYPES))
    own = [LeadEvent(r[0], json.loads(unpack(r[1])), r[2], kit) for r in conn.execute(
        f"SELECT type, payload, hlc FROM events WHERE type IN ({marks})", SHARED_TYPES)]
    peers = [LeadEvent(r[0], json.loads(r[1]), r[2], r[3]) for r in conn.execute(
        "SELECT type, payload, hlc, origin_kit FROM lead_peer_events")]
    return own + peers


def version(conn: sqlite3.Connection) -> tuple[int, int]:
    """Changes whenever an event of the evening arrives (own or peer): when to fold again."""
    marks = ",".join("?" * len(SHARED_TYPES))
    own = conn.execute(f"SELECT COALESCE(MAX(seq), 0) FROM events WHERE type IN ({marks})", SHARED_TYPES).fetchone()[0]
    peers = conn.execute("SELECT COUNT(*) FROM lead_peer_events").fetchone()[0]
    return own, peers


def evening(conn: sqlite3.Connection, kit: str, tz: ZoneInfo) -> Evening:
    events = lead_events(conn, kit)
    published = [e for e in events if e.type == PUBLISHED]
    if not published:
        return Evening(None, [])
    newest = max(published, key=lambda e: (e.hlc, e.origin))
    try:
        sheet = parse_runsheet(newest.payload["toml"], tz)
    except (RunSheetError, KeyError) as e:  # peers' were checked on arrival; only a damaged row gets here
        log.error("event=runsheet_unreadable origin=%s reason=%r", newest.origin, str(e))
        return Evening(None, [])
    adjustments = []
    for e in events:
        p = e.payload
        if e.type == PUBLISHED or p.get("runsheet") != sheet.digest:
            continue  # adjustments of an earlier run-sheet do not move this one
        if e.type == NEXT:
            adjustments.append(Adjustment("next", p["slot"], float(p["start_at"]), e.hlc, e.origin))
        else:
            adjustments.append(Adjustment("late", p["slot"], float(p["seconds"]), e.hlc, e.origin, bool(p["extend"])))
    return Evening(sheet, effective_slots(sheet, adjustments), newest.origin)


# --- recording ---------------------------------------------------------------------------------------

def publish_runsheet(conn: sqlite3.Connection, ledger: Ledger, sheet: RunSheet, by: str) -> None:
    ledger.append(conn, PUBLISHED, {"digest": sheet.digest, "name": sheet.name, "toml": sheet.text, "by": by})


def next_slot(conn: sqlite3.Connection, ledger: Ledger, tz: ZoneInfo, by: str, now: float | None = None) -> dict:
    """Move on: the next slot starts now (the running one ends now). Inside the caller's transaction."""
    now = round(ledger.clock.time() if now is None else now, 3)  # the event's start_at, exactly
    ev = evening(conn, ledger.kit_id, tz)
    if ev.sheet is None:
        raise LeadError("no run-sheet: import one first (fieldkit runsheet import FILE, or the Documents page)")
    view = ev.at(now)
    if view.next is not None:
        target = view.next.slot.index
    elif view.current is not None:
        target = len(ev.slots)  # the last slot is running: Next ends the evening's programme
    else:
        raise LeadError("the run-sheet is over: there is no next slot")
    ledger.append(conn, NEXT, {"runsheet": ev.sheet.digest, "slot": target, "start_at": now, "by": by})
    log.info("event=slot_next slot=%d by=%s", target, by)
    return evening(conn, ledger.kit_id, tz).at(now).as_dict()


def running_late(conn: sqlite3.Connection, ledger: Ledger, tz: ZoneInfo, minutes: float, by: str,
                 now: float | None = None) -> dict:
    """Every later slot moves by ``minutes``; the running slot (if any) gets them as extra time."""
    if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not math.isfinite(minutes) \
            or not 0 < minutes * 60 <= MAX_LATE_SECONDS:
        raise LeadError(f"minutes must be a number above 0 and at most {MAX_LATE_SECONDS // 60}")
    now = ledger.clock.time() if now is None else now
    ev = evening(conn, ledger.kit_id, tz)
    if ev.sheet is None:
        raise LeadError("no run-sheet: import one first (fieldkit runsheet import FILE, or the Documents page)")
    view = ev.at(now)
    if view.current is not None:
        slot, extend = view.current.slot.index, True
    elif view.next is not None:
        slot, extend = view.next.slot.index, False
    else:
        raise LeadError("the run-sheet is over: nothing left to move")
    seconds = int(round(minutes * 60))
    ledger.append(conn, LATE, {"runsheet": ev.sheet.digest, "slot": slot, "seconds": seconds, "extend": extend, "by": by})
    log.info("event=running_late slot=%d seconds=%d by=%s", slot, seconds, by)
    return evening(conn, ledger.kit_id, tz).at(now).as_dict()


DOORS_OPEN = "lead.doors_open"
EVENING_SECONDS = 18 * 3600  # a second "doors open" within this is a mistake, not a new evening


def open_doors(conn: sqlite3.Connection, ledger: Ledger, tz: ZoneInfo, by: str) -> dict:
    """The lead says the doors are open: go-live in the numbers counts from here (else the first admission)."""
    now = ledger.clock.time()
    row = conn.execute("SELECT payload FROM events WHERE type = ? ORDER BY seq DESC LIMIT 1", (DOORS_OPEN,)).fetchone()
    if row is not None:
        at = json.loads(unpack(row[0])).get("at", 0)
        if isinstance(at, int | float) and now - at < EVENING_SECONDS:
            raise LeadError(f"the doors were already opened at {datetime.fromtimestamp(at, tz):%H:%M}")
    ledger.append(conn, DOORS_OPEN, {"at": round(now, 3), "by": by})
    log.info("event=doors_open by=%s", by)
    return {"at": round(now, 3)}


# --- what peers send ---------------------------------------------------------------------------------

def peer_payload_problem(type_: str, p: dict, tz: ZoneInfo) -> str | None:
    """Why a peer's run-sheet event is refused (short reason), or None. As strict as an HTTP body."""
    by = p.get("by", "")
    if not isinstance(by, str) or len(by) > 40:
        return "by"
    if type_ == PUBLISHED:
        toml = p.get("toml")
        if not isinstance(toml, str) or len(toml.encode()) > MAX_BYTES:
            return "toml"
        if p.get("digest") != hashlib.sha256(toml.encode()).hexdigest():
            return "digest"
        if not isinstance(p.get("name"), str) or len(p["name"]) > 80:
            return "name"
        try:
            parse_runsheet(toml, tz)
        except RunSheetError as e:
            return f"toml: {e.reason}"[:200]
        return None
    if not isinstance(p.get("runsheet"), str) or not _DIGEST.match(p["runsheet"]):
        return "runsheet"
    slot = p.get("slot")
    if isinstance(slot, bool) or not isinstance(slot, int) or not 0 <= slot <= MAX_SLOTS:
        return "slot"
    if type_ == NEXT:
        at = p.get("start_at")
        if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at) or not 0 < at < 1e11:
            return "start_at"
        return None
    seconds = p.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 0 < seconds <= MAX_LATE_SECONDS:
        return "seconds"
    if not isinstance(p.get("extend"), bool):
        return "extend"
    return None


def store_peer_event(conn: sqlite3.Connection, origin: str, seq: int, event_id: str, type_: str, hlc: int,
                     payload: dict) -> bool:
    cur = conn.execute("INSERT OR IGNORE INTO lead_peer_events (origin_kit, seq, event_id, type, hlc, payload, received_at)"
                       " VALUES (?,?,?,?,?,?,?)", (origin, seq, event_id, type_, hlc, json.dumps(payload), time.time()))
    return cur.rowcount == 1
