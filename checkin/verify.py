"""``checkin/cmd/verify``: is this ticket good, and of which type? Asked by other features, never admitting.

The merch table's members-first drop asks it (pos never imports checkin: they meet on the bus). The
answer names the ticket by ``ticket_ref`` — a hash of the ticket's key, the same on every kit of the
site, so "one unlock per ticket" holds site-wide without the secret or the person leaving check-in.
Answered on ``checkin/event/verify`` with the request's id.
"""

from __future__ import annotations

import hashlib
import logging

from checkin.validate import Decision, KeyRing, clean_payload, find_ticket
from kit import topics

log = logging.getLogger("fieldkit.checkin.verify")
VERIFY_FIELDS_MAX = 4096


def ticket_ref(ticket_key: str) -> str:
    return hashlib.sha256(("fieldkit-ticket:" + ticket_key).encode()).hexdigest()[:32]


def verify_code(conn, keyring: KeyRing, code: str) -> dict:
    """What a ticket code is, for a feature that only needs to know it is good (nothing is written)."""
    found = find_ticket(conn, clean_payload(code), keyring, rehearsal=False)
    if isinstance(found, Decision):
        return {"ok": False, "reason": found.reason}
    if found.practice:
        return {"ok": False, "reason": "Practice ticket from the rehearsal sheet — not a real ticket"}
    revoked = conn.execute("SELECT status FROM checkin_revocations WHERE secret = ?", (found.key,)).fetchone()
    status = revoked[0] if revoked else found.status
    if status in ("revoked", "blocked"):
        return {"ok": False, "reason": f"Ticket {status} — it unlocks nothing"}
    return {"ok": True, "ticket_ref": ticket_ref(found.key), "ticket_type": found.ticket_type or "Ticket"}


def answer_verify(ctx, keyring: KeyRing, msg: dict) -> None:
    """The handler of ``checkin/cmd/verify`` {"id", "code"}."""
    try:
        answer = verify_code(ctx.db.conn, keyring, str(msg.get("code") or ""))
    except Exception:  # a database problem answers "try again"; it never kills the bus thread
        log.exception("event=verify_failed")
        answer = {"ok": False, "reason": "Check-in could not read its guest list — try again"}
    log.info("event=ticket_verified ok=%s type=%r", answer["ok"], answer.get("ticket_type", ""))
    ctx.bus.publish(topics.event(ctx.config.kit_id, "checkin", "verify"), {"id": str(msg.get("id", ""))[:80], **answer})
