"""Signups: a guest's e-mail for the organiser's list, given at the door or the merch table with consent.

Personal data never goes into the ledger (DESIGN.md): the ledger records *that* a signup happened
(``lead.signup`` {"id", "consent_version", "linked", "by"}, no e-mail); the record itself, with the
consent sentence and its version the guest agreed to, goes to the kit's personal-records outbox
(kit/personal.py), which the sync agent uploads to HQ through its own idempotent endpoint.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import uuid

from kit import personal
from kit.ledger import Ledger
from lead.evening import LeadError

log = logging.getLogger("fieldkit.lead")
KIND = "lead.signup"
EVENT = "lead.signup"
EMAIL_RE = re.compile(r"^[^@\s<>\"']{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")
LINK_RE = re.compile(r"^[\w.:/-]{0,128}$")


def add_signup(conn: sqlite3.Connection, ledger: Ledger, config, *, email: str, consent: bool, ticket: str = "",
               receipt: str = "", by: str = "door") -> dict:
    """Record one signup inside the caller's transaction. Refused without the guest's consent."""
    sentence, version = config["lead.signup_consent"], str(config["lead.signup_consent_version"])
    if consent is not True:
        raise LeadError(f"ask first: the guest must agree to \u201c{sentence}\u201d")
    email = (email or "").strip()
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise LeadError("that is not an e-mail address (like name@example.org)")
    ticket, receipt = (ticket or "").strip(), (receipt or "").strip()
    if not LINK_RE.match(ticket) or not LINK_RE.match(receipt):
        raise LeadError("a ticket or receipt code is at most 128 letters, digits or -_.:/")
    signup_id = str(uuid.uuid4())
    at = ledger.clock.time()
    personal.put(conn, KIND, signup_id, {"email": email, "consent_text": sentence, "consent_version": version,
                                         "ticket": ticket, "receipt": receipt, "kit": config.kit_id, "by": by,
                                         "at": round(at, 3)}, now=at)
    linked = "ticket" if ticket else "receipt" if receipt else ""
    ledger.append(conn, EVENT, {"id": signup_id, "consent_version": version, "linked": linked, "by": by})
    log.info("event=signup id=%s linked=%s by=%s", signup_id, linked or "-", by)
    return {"id": signup_id, "consent_version": version, "linked": linked}
