"""The second check: a guest without a scannable code proves who they are with two things the ticket
shop knows (order code, e-mail, the phone's last four digits, postcode, date of birth), whichever of
them the imported list holds for that attendee.

Every identifier the staff typed must match; two must be given. A mismatch says which one, so the
staff can ask again; the refusal is logged (without the values: they are personal data).
"""

from __future__ import annotations

import logging
import re
import sqlite3

from checkin.attendees import birth_date

log = logging.getLogger("fieldkit.checkin.identity")
NEEDED = 2
# identifier -> (the ticket column, what the staff call it)
FIELDS = {
    "order_code": ("order_code", "order code"),
    "email": ("email", "e-mail"),
    "phone_last4": ("phone", "phone's last four digits"),
    "postcode": ("postcode", "postcode"),
    "birth_date": ("birth_date", "date of birth"),
}


def _norm(field: str, value: str) -> str:
    value = str(value or "").strip()[:200]
    if field == "order_code":
        return re.sub(r"[\s-]+", "", value).upper()
    if field == "email":
        return value.lower()
    if field == "phone_last4":
        return re.sub(r"\D", "", value)[-4:]
    if field == "postcode":
        return re.sub(r"\s+", "", value).upper()
    if field == "birth_date":
        return birth_date(value)
    return value


def held(row: sqlite3.Row) -> list[str]:
    """The identifiers the list holds for this attendee (what the door may ask for)."""
    out = []
    for field, (column, _label) in FIELDS.items():
        value = row[column]
        if value and (field != "phone_last4" or len(re.sub(r"\D", "", value)) >= 4):
            out.append(field)
    return out


def confirm(row: sqlite3.Row, given: dict) -> list[str]:
    """The labels of the identifiers that matched (at least two), or CheckinError saying what failed."""
    from checkin.scans import CheckinError

    if not isinstance(given, dict):
        raise CheckinError('send the identifiers the guest gave, e.g. {"order_code": ..., "email": ...}')
    available = held(row)
    if len(available) < NEEDED:
        names = ", ".join(FIELDS[f][1] for f in available) or "nothing"
        raise CheckinError(
            f"the guest list holds only {names} for this guest: a second check needs two — "
            "a lead can admit with a reason"
        )
    matched = []
    for field, value in given.items():
        if field not in FIELDS or not isinstance(value, str) or not value.strip():
            continue
        label = FIELDS[field][1]
        if field not in available:
            raise CheckinError(
                f"the guest list holds no {label} for this guest; ask for "
                + " or ".join(FIELDS[f][1] for f in available)
            )
        if field == "phone_last4" and len(_norm(field, value)) != 4:
            raise CheckinError("give the last four digits of the phone number")
        if _norm(field, value) != _norm(field, row[FIELDS[field][0]]):
            log.info("event=second_check_refused ticket=%s field=%s", str(row["ticket_key"])[:20], field)
            raise CheckinError(f"the {label} does not match the guest list — check it again, or call a lead")
        matched.append(label)
    if len(matched) < NEEDED:
        raise CheckinError(
            f"confirm two of: {', '.join(FIELDS[f][1] for f in available)} ({len(matched)} given)"
        )
    return matched
