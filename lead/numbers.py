"""The evening's numbers on this kit: its ledger, read into kit/metrics.py (HQ does the same across kits)."""

from __future__ import annotations

import json

from kit.db import Database
from kit.event_codec import unpack
from kit.metrics import MetricEvent, evening_numbers, event_time

COUNTED_TYPES = ("checkin.scanned", "checkin.undone", "pos.sale", "pos.refund", "pos.pickup_collected",
                 "lead.slot_started", "lead.slot_ended", "pos.drop_started", "pos.drop_sold", "pos.drop_unlocked",
                 "lead.signup", "lead.doors_open")


def tickets_on_list(db: Database) -> tuple[int | None, int | None]:
    """Tickets on the newest imported attendee list and how many of them RSVP'd yes (its import report);
    None for what the list does not say (no list, no RSVP column)."""
    row = db.query_one("SELECT report FROM kit_documents WHERE kind = 'checkin.attendees' ORDER BY version DESC LIMIT 1")
    if row is None:
        return None, None
    report = json.loads(row["report"] or "{}")
    coming = (report.get("counts") or {}).get("rsvps")
    tickets = sum(int(report.get(k) or 0) for k in ("imported", "updated", "unchanged")) or None
    return tickets, coming if isinstance(coming, int) and not isinstance(coming, bool) else None


def kit_numbers(db: Database, tz) -> dict:
    marks = ",".join("?" * len(COUNTED_TYPES))
    events = []
    for r in db.query(f"SELECT id, kit, type, payload, wall_time FROM events WHERE type IN ({marks}) ORDER BY seq",
                      COUNTED_TYPES):
        payload = json.loads(unpack(r["payload"]))
        events.append(MetricEvent(r["kit"], r["type"], payload, event_time(payload, r["wall_time"]), r["id"]))
    tickets, coming = tickets_on_list(db)
    return evening_numbers(events, tz, tickets, coming)
