"""The checkin feature's reference documents: attendee lists, ticket keys, revocations.

One importer per kind, shared by the CLI, the dashboard's upload page and documents pulled from HQ.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from kit.documents import DocumentError, DocumentKind, ImportReport
from kit.features import lazy

ATTENDEES = "checkin.attendees"
KEYS = "checkin.keys"
REVOCATIONS = "checkin.revocations"


def import_key_document(conn: sqlite3.Connection, data: bytes, filename: str, config,
                        progress: Callable[[int, int], None] | None = None, kind: str = "pretix") -> ImportReport:
    """Adds every public key found (pretix event JSON, PEM, or base64 lines); known keys stay."""
    from checkin.keys import TicketKeyError, add_keys, parse_public_keys

    try:
        keys = parse_public_keys(data)
    except TicketKeyError as e:
        raise DocumentError(f"{filename}: {e}") from None
    added, known = add_keys(conn, keys, kind, filename)
    report = ImportReport(imported=added, unchanged=known)
    report.notes.append(f"{added + known} key(s) in the file; the kit now verifies tickets signed by any of them")
    return report


DOCUMENTS = [
    # Importers load on first use: every kit process reads this list, few of them import documents.
    DocumentKind(ATTENDEES, "Attendee list", lazy("checkin.attendees:import_attendees"), accept=(".csv", ".txt", ".tsv"),
                 help="pretix check-in list, Eventbrite attendee report, Tito export or any CSV with a code column"),
    DocumentKind(KEYS, "Ticket keys", import_key_document, accept=(".json", ".pem", ".txt"),
                 help="pretix event JSON (valid_keys) or public keys as PEM / base64"),
    DocumentKind(REVOCATIONS, "Revoked and blocked tickets", lazy("checkin.revocations:import_revocations"), accept=(".csv", ".txt"),
                 help="one ticket secret per line: SECRET revokes, SECRET,blocked blocks, -SECRET lifts; entries add up"),
]
