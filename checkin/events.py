"""Telling the kit about a verdict: ``fieldkit/<kit>/checkin/event/scanned`` (payload in kit/topics.py)."""

from __future__ import annotations

import logging

from checkin.counts import read_counts
from checkin.validate import DoorRules
from kit import topics

log = logging.getLogger("fieldkit.checkin")

PREVIEW = "preview"  # fieldkit/<kit>/checkin/preview: small JPEG frames for the door page (local only)
DOUBLE = "double_admission"  # fieldkit/<kit>/checkin/event/double_admission
SIMULATE = "simulate"  # fieldkit/<kit>/checkin/cmd/simulate: {"payload", "source"?} from the demo panel


KEYS = ("verdict", "colour", "attention", "attention_reason", "ticket_type", "name", "door", "reason", "seq",
        "rehearsal", "admitted", "order_code", "source", "at", "manual_reason", "method")


def scanned_message(result: dict, rules: DoorRules, counts: dict) -> dict:
    """The verdict and the door's counts after it (``checkin.counts.read_counts``), so a door screen
    updates its numbers from the event alone and does not ask for the stats after every scan."""
    return {**{k: result.get(k) for k in KEYS}, "time": rules.clock_text(result["at"]), "admitted_total": counts["in"],
            "counts": counts}


def publish_scanned(bus, db, rules: DoorRules, result: dict) -> dict:
    """Publish a recorded verdict (best effort: the ledger already holds it)."""
    message = scanned_message(result, rules, read_counts(db.conn))
    if bus is not None:
        bus.publish(topics.event(rules.kit, *topics.CHECKIN_SCANNED), message, qos=1)
    return message
