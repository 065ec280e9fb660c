"""Attendee list import: pretix, Eventbrite, Tito and plain CSV, matched leniently by header.

Headers differ by export version and language, so each column is found by a normalised name
(case, spaces, punctuation and a BOM ignored). Importing again updates rows by their ticket key and
never duplicates; rows that are not in a newer file are kept (a partial list must not turn paying
guests away). The same importer serves the CLI, the dashboard's upload page and HQ downloads.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
import sqlite3
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from kit.documents import DocumentError, ImportReport
from kit.localtime import parse_when
from kit.metrics import rsvps

log = logging.getLogger("fieldkit.checkin.import")
FORMATS = ("auto", "pretix", "eventbrite", "tito", "csv")

# normalised header -> field; first match in file order wins per field
ALIASES: dict[str, tuple[str, ...]] = {
    "secret": ("secret", "qr code secret", "ticket secret", "barcode", "barcode number", "qr code", "qr",
               "ticket code", "code", "ticket barcode"),
    "order": ("order code", "order", "order number", "order id", "order reference", "ticket reference",
              "reference", "bestellnummer"),
    "name": ("attendee name", "name", "full name", "ticket full name", "attendee full name", "guest name"),
    "first": ("first name", "ticket first name", "attendee first name", "given name", "firstname", "vorname"),
    "last": ("last name", "ticket last name", "attendee last name", "surname", "family name", "lastname", "nachname"),
    "email": ("e mail", "email", "ticket email", "attendee e mail", "attendee email", "email address", "e mail address"),
    "type": ("product", "ticket type", "ticket", "type", "item", "ticket name", "price tier", "category"),
    "status": ("attendee status", "void status", "status", "order status"),
    "paid": ("paid",),
    "attention": ("requires special attention", "special attention", "attention", "flagged", "flag"),
    "blocked": ("blocked",),
    "valid_from": ("valid from", "start date", "start", "valid since"),
    "valid_until": ("valid until", "end date", "end", "valid to"),
    "date": ("date", "event date", "day"),
    "comment": ("comment", "notes", "note"),
    "attendee_no": ("attendee", "attendee number", "attendee no", "position"),
    # What a second check compares (checkin/identity.py), whichever of them the export holds.
    "phone": ("phone", "phone number", "mobile", "mobile phone", "mobile number", "telephone", "tel", "cell phone",
              "attendee phone", "ticket phone", "cell", "telefon"),
    "postcode": ("postcode", "post code", "postal code", "zip", "zip code", "zip postal code", "plz",
                 "attendee postcode", "billing postcode", "billing zip"),
    "birth_date": ("date of birth", "birth date", "birthdate", "dob", "birthday", "geburtsdatum"),
}
REVOKED_WORDS = {"refunded", "refund", "cancelled", "canceled", "void", "voided", "not attending", "deleted",
                 "storniert", "erstattet", "transferred"}
TRUE_WORDS = {"yes", "y", "true", "1", "ja", "x", "✓", "✔", "oui", "si"}


def normalise_header(h: str) -> str:
    return " ".join(re.sub(r"[^0-9a-zäöüß]+", " ", h.replace("\ufeff", "").lower()).split())


def decode_text(data: bytes, report: ImportReport) -> str:
    if data.startswith(b"\xff\xfe") or data.startswith(b"\xfe\xff"):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        report.notes.append("the file is not UTF-8; read it as Windows-1252 (check accented names)")
        return data.decode("cp1252", errors="replace")


def sniff_delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t", "|")}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


def detect_format(headers: set[str]) -> str:
    if "ticket reference" in headers or "ticket full name" in headers or "void status" in headers:
        return "tito"
    if "attendee status" in headers or "barcode" in headers or ("order" in headers and "ticket type" in headers):
        return "eventbrite"
    if "order code" in headers and ("attendee name" in headers or "secret" in headers or "product" in headers):
        return "pretix"
    return "csv"


def consent_columns(headers: list[str], config) -> list[int]:
    """The opt-in columns (``checkin.consent_columns``: a header containing any of the words)."""
    words = config["checkin.consent_columns"] if config is not None else ["consent", "opt-in", "opt in", "marketing"]
    words = [normalise_header(str(w)) for w in words if normalise_header(str(w))]
    return [i for i, h in enumerate(headers) if any(w in normalise_header(h) for w in words)]


def map_columns(headers: list[str]) -> dict[str, int]:
    norm = [normalise_header(h) for h in headers]
    found: dict[str, int] = {}
    for field, names in ALIASES.items():
        for name in names:
            if name in norm and norm.index(name) not in found.values():
                found[field] = norm.index(name)
                break
    return found


def birth_date(value: str) -> str:
    """A date of birth as YYYY-MM-DD when it reads as one (2001-04-30, 30.04.2001, 30/04/2001), else as given."""
    value = value.strip()[:20]
    for fmt in ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y", "%Y/%m/%d", "%d-%m-%Y"):
        try:
            return datetime.strptime(value, fmt).date().isoformat()
        except ValueError:
            continue
    return value


def _truthy(value: str) -> bool:
    return value.strip().lower() in TRUE_WORDS


def import_attendees(
    conn: sqlite3.Connection,
    data: bytes,
    filename: str,
    config,
    progress: Callable[[int, int], None] | None = None,
    fmt: str = "auto",
) -> ImportReport:
    """Importer for the ``checkin.attendees`` document (runs inside the caller's transaction)."""
    report = ImportReport()
    text = decode_text(data, report)
    first_line = text.split("\n", 1)[0]
    # NUL bytes make the csv module give up; a list exported from a spreadsheet never needs them.
    reader = csv.reader(io.StringIO(text.replace("\x00", "")), delimiter=sniff_delimiter(first_line))
    try:
        headers = next(reader)
    except StopIteration:
        raise DocumentError(f"{filename}: the file is empty") from None
    except csv.Error as e:
        raise DocumentError(f"{filename}: not a CSV file ({e})") from None
    cols = map_columns(headers)
    consent_cols = [i for i in consent_columns(headers, config) if i not in cols.values()]
    if fmt == "auto":
        fmt = detect_format({normalise_header(h) for h in headers})
    if "secret" not in cols and "order" not in cols:
        raise DocumentError(
            f"{filename}: no ticket code or order column found (headers: {', '.join(h.strip() for h in headers[:12])})")
    if not ({"name", "first", "last", "email"} & cols.keys()):
        report.notes.append("no name column: search by name will not find these tickets")
    report.notes.append(f"format {fmt}; columns used: " + ", ".join(f"{f}={headers[i].strip()!r}" for f, i in cols.items()))
    if consent_cols:
        report.notes.append("consent columns kept: " + ", ".join(repr(headers[i].strip()) for i in consent_cols))
    tz = config.tz if config is not None else ZoneInfo("UTC")
    try:
        rows = list(reader)
    except csv.Error as e:
        raise DocumentError(f"{filename}: line {reader.line_num} cannot be read as CSV ({e})") from None
    total = len(rows)
    coming = rsvps(headers, rows)  # the numbers' attendance against RSVPs, kept in the import report
    if coming is not None:
        report.counts["rsvps"] = coming
        report.notes.append(f"{coming} of {total} rows say they are coming (RSVP / registration status)")
    existing = dict(conn.execute("SELECT ticket_key, row_hash FROM checkin_tickets"))
    seen: dict[str, int] = {}
    upserts: list[tuple] = []

    def cell(row: list[str], field: str) -> str:
        i = cols.get(field)
        return row[i].strip() if i is not None and i < len(row) else ""

    for n, row in enumerate(rows, start=2):
        if progress and n % 5000 == 0:
            progress(n - 1, total)
        if not any(c.strip() for c in row):
            continue
        secret, order = cell(row, "secret"), cell(row, "order")
        first, last = cell(row, "first"), cell(row, "last")
        name = cell(row, "name") or " ".join(p for p in (first, last) if p)
        if not last and name:
            last = name.rsplit(" ", 1)[-1]
        if not secret and not order:
            report.skipped.append((n, "no ticket code and no order code"))
            continue
        # Tito's ticket reference is unique per ticket; other exports need the attendee to tell rows apart.
        key = secret or (order if fmt == "tito" else f"{fmt}:{order}:{cell(row, 'attendee_no') or name.lower()}")
        if len(key) > 1024:
            report.skipped.append((n, "ticket code longer than 1024 characters"))
            continue
        if key in seen:
            report.skipped.append((n, f"same ticket as row {seen[key]}"))
            continue
        status_word = cell(row, "status").lower()
        status, comment = "valid", cell(row, "comment")
        if status_word in REVOKED_WORDS:
            status = "revoked"
        if "paid" in cols and cell(row, "paid").lower() in ("no", "false", "0", "nein", "n"):
            status, comment = "revoked", ("not paid. " + comment).strip()
        if _truthy(cell(row, "blocked")):
            status = "blocked"
        attention_cell = cell(row, "attention")
        try:
            valid_from = valid_until = None
            if cell(row, "valid_from"):
                valid_from = parse_when(cell(row, "valid_from"), tz)
            if cell(row, "valid_until"):
                valid_until = parse_when(cell(row, "valid_until"), tz, end_of_day=True)
            if cell(row, "date") and valid_from is None and valid_until is None:
                valid_from = parse_when(cell(row, "date")[:10], tz)
                valid_until = parse_when(cell(row, "date")[:10], tz, end_of_day=True)
        except ValueError as e:
            report.skipped.append((n, str(e)))
            continue
        seen[key] = n
        consent = {headers[i].strip()[:80]: row[i].strip()[:80] for i in consent_cols if i < len(row) and row[i].strip()}
        values = (order, name, last, cell(row, "email"), cell(row, "type"), status,
                  int(_truthy(attention_cell)), valid_from, valid_until, comment, fmt, cell(row, "phone")[:40],
                  cell(row, "postcode")[:20], birth_date(cell(row, "birth_date")),
                  json.dumps(consent, ensure_ascii=False) if consent else "")
        digest = hashlib.blake2b(repr(values).encode(), digest_size=12).hexdigest()
        old = existing.get(key)
        if old == digest:
            report.unchanged += 1
            continue
        if old is None:
            report.imported += 1
        else:
            report.updated += 1
        upserts.append((key, *values, digest))
    conn.executemany(
        "INSERT INTO checkin_tickets (ticket_key, order_code, name, last_name, email, ticket_type, status, attention,"
        " valid_from, valid_until, comment, source, phone, postcode, birth_date, consent, row_hash)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT(ticket_key) DO UPDATE SET order_code=excluded.order_code, name=excluded.name,"
        " last_name=excluded.last_name, email=excluded.email, ticket_type=excluded.ticket_type,"
        " status=excluded.status, attention=excluded.attention, valid_from=excluded.valid_from,"
        " valid_until=excluded.valid_until, comment=excluded.comment, source=excluded.source, phone=excluded.phone,"
        " postcode=excluded.postcode, birth_date=excluded.birth_date, consent=excluded.consent,"
        " row_hash=excluded.row_hash",
        upserts,
    )
    if upserts:
        conn.execute("INSERT INTO checkin_tickets_fts(checkin_tickets_fts) VALUES('rebuild')")
    kept = len(existing.keys() - seen.keys())
    if kept:
        report.notes.append(f"{kept} tickets from earlier imports are not in this file; they were kept")
    if progress:
        progress(total, total)
    log.info("event=attendees_imported file=%s format=%s rows=%d imported=%d updated=%d skipped=%d",
             filename, fmt, total, report.imported, report.updated, len(report.skipped))
    return report


def importer_for(fmt: str):
    """A document importer bound to one format (the CLI's --format)."""
    def run(conn, data, filename, config, progress=None):
        return import_attendees(conn, data, filename, config, progress, fmt=fmt)
    return run
