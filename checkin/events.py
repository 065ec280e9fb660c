"""Telling the kit about a verdict: ``fieldkit/<kit>/checkin/event/scanned`` (payload in kit/topics.py)."""

from __future__ import annotations

import logging

from checkin.stats import admitted_total
from checkin.validate import DoorRules
from kit import topics

log = logging.getLogger("fieldkit.checkin")

PREVIEW = "preview"  # fieldkit/<kit>/checkin/preview: small JPEG frames for the door page (local only)
DOUBLE = "double_admission"  # fieldkit/<kit>/checkin/event/double_admission
SIMULATE = "simulate"  # fieldkit/<kit>/checkin/cmd/simulate: {"payload", "source"?} from the demo panel


def scanned_message(result: dict, rules: DoorRules, total: int) -> dict:
    keys = ("verdict", "colour", "attention", "attention_reason", "ticket_type", "name", "door", "reason", "seq",
            "rehearsal", "admitted", "order_code", "source", "at", "manual_reason")
    return {**{k: result.get(k) for k in keys}, "time": rules.clock_text(result["at"]), "admitted_total": total}


def publish_scanned(bus, db, rules: DoorRules, result: dict) -> dict:
    """Publish a recorded verdict (best effort: the ledger already holds it)."""
    message = scanned_message(result, rules, admitted_total(db.conn, rules.kit))
    if bus is not None:
        bus.publish(topics.event(rules.kit, *topics.CHECKIN_SCANNED), message, qos=1)
    return message
