"""Check-in's personal data, erased after the event (kit/privacy.py calls this through the registration).

Names, e-mails, phones and answers go; ticket keys, types, order codes and every scan's verdict stay, so
the door still refuses a ticket that was used. The search index is rebuilt from the blanked rows (its
own pages held the names' tokens), and the raw copies of imported attendee lists are removed.
"""

from __future__ import annotations

# Every column an attendee import may fill with something about the person; those a table lacks are
# skipped (the second-check issue adds phone, postcode and date of birth). row_hash is a digest of
# the row, names included: it goes too (the next import then counts every row as updated).
TICKET_COLUMNS = (
    "name",
    "last_name",
    "email",
    "phone",
    "postcode",
    "birth_date",
    "date_of_birth",
    "answers",
    "address",
    "company",
    "comment",
    "row_hash",
)
PAYLOAD_KEYS = ("name", "last_name", "email", "phone", "manual_reason")
# A lead's reason for a manual admission is free text a person typed ("Ana's phone died"): it goes too.
SCAN_COLUMNS = ("name", "manual_reason")


def erase_personal_data(ctx) -> None:
    ctx.blank("attendee names, e-mails and answers (checkin_tickets)", "checkin_tickets", TICKET_COLUMNS)
    ctx.run("INSERT INTO checkin_tickets_fts(checkin_tickets_fts) VALUES('rebuild')")
    ctx.blank("names and typed reasons on this door's scans (checkin_scans)", "checkin_scans", SCAN_COLUMNS)
    ctx.blank("names on other doors' scans (checkin_peer_events)", "checkin_peer_events", ("name",))
    ctx.blank_json(
        "names in other doors' scan payloads (checkin_peer_events)",
        "checkin_peer_events",
        "payload",
        PAYLOAD_KEYS,
    )
    ctx.remove_documents("checkin.attendees")
