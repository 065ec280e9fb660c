"""Revocations add up, whatever their source: a file, this door, another door of the site.

``checkin_revocations`` holds every code the door refuses, with where the refusal came from
(``origin``: ``file`` or the kit id), why, when and at which door, and whether the code was reissued.

- An imported revocation file adds its lines: ``SECRET`` revokes, ``SECRET,blocked`` blocks, ``-SECRET``
  lifts one (the only way a file un-revokes). A second file never drops what the first revoked.
- A door's revocation, a lift and a reissued ticket are ledger events of this kit (``checkin.revoked``,
  ``checkin.revocation_lifted``, ``checkin.ticket_added``), applied here, shared with the site's other
  doors over the site link (checkin/peers.py) and uploaded to HQ with the next sync.
- A peer's arrive over the site link and are applied by the same functions.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Callable

from kit.documents import ImportReport

log = logging.getLogger("fieldkit.checkin.revocations")
MAX_REASON = 200


def import_revocations(
    conn: sqlite3.Connection,
    data: bytes,
    filename: str,
    config,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """``checkin.revocations``: adds to the revocation table; ``-SECRET`` lifts. Says what it added and lifted."""
    from checkin.attendees import decode_text

    report = ImportReport()
    text = decode_text(data, report)
    seen: set[str] = set()
    added = changed = lifted = 0
    for n, line in enumerate(text.splitlines(), start=1):
        parts = [p.strip() for p in re.split(r"[,;\t]", line)]
        if not parts or not parts[0] or parts[0].lower() in ("secret", "code"):
            continue
        secret, lift = parts[0], parts[0].startswith("-")
        if lift:
            secret = secret[1:].strip()
        if not secret or len(secret) > 1024:
            report.skipped.append((n, "no code" if not secret else "code longer than 1024 characters"))
            continue
        if secret in seen:
            report.skipped.append((n, "listed twice"))
            continue
        seen.add(secret)
        if lift:
            if lift_in(conn, secret):
                lifted += 1
            else:
                report.skipped.append((n, "lift of a code that is not revoked"))
            continue
        status = "blocked" if len(parts) > 1 and parts[1].lower() == "blocked" else "revoked"
        old = conn.execute("SELECT status FROM checkin_revocations WHERE secret = ?", (secret,)).fetchone()
        if old is not None and old[0] == status:
            report.unchanged += 1
            continue
        conn.execute(
            "INSERT INTO checkin_revocations (secret, status, origin, reason, door, at, reissued, event_id)"
            " VALUES (?, ?, 'file', ?, '', 0, 0, '') ON CONFLICT(secret) DO UPDATE SET status = excluded.status,"
            " origin = 'file', reason = excluded.reason, reissued = 0",
            (secret, status, filename[:MAX_REASON]),
        )
        if old is None:
            added += 1
        else:
            changed += 1
    report.imported, report.updated = added, changed
    total = conn.execute("SELECT COUNT(*) FROM checkin_revocations").fetchone()[0]
    report.notes.append(
        f"added {added}, changed {changed}, lifted {lifted}; {total} codes revoked or blocked in all"
        " (earlier revocations are kept; a line '-SECRET' lifts one)"
    )
    log.info(
        "event=revocations_imported file=%s added=%d changed=%d lifted=%d total=%d",
        filename,
        added,
        changed,
        lifted,
        total,
    )
    return report


def lift_in(conn: sqlite3.Connection, secret: str) -> bool:
    """Lift one revocation (inside the caller's transaction); a reissued ticket's old row counts again."""
    gone = conn.execute("DELETE FROM checkin_revocations WHERE secret = ?", (secret,)).rowcount
    conn.execute(
        "UPDATE checkin_tickets SET status = 'valid' WHERE ticket_key = ? AND status = 'reissued'", (secret,)
    )
    return bool(gone)


def revocation(conn: sqlite3.Connection, secret: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM checkin_revocations WHERE secret = ?", (secret,)).fetchone()


def apply_revocation_event(
    conn: sqlite3.Connection, kind: str, p: dict, *, origin: str, event_id: str
) -> None:
    """This kit's or a validated peer's revocation, lift or added ticket (live, catch-up, ``ledger rebuild``)."""
    key = p["ticket_key"]
    if kind == "checkin.revoked":
        conn.execute(
            "INSERT INTO checkin_revocations (secret, status, origin, reason, door, at, reissued, event_id)"
            " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(secret) DO UPDATE SET status = excluded.status,"
            " origin = excluded.origin, reason = excluded.reason, door = excluded.door, at = excluded.at,"
            " reissued = excluded.reissued, event_id = excluded.event_id",
            (
                key,
                p.get("status") or "revoked",
                origin,
                p.get("reason", "")[:MAX_REASON],
                p.get("door", ""),
                float(p.get("at") or 0),
                int(bool(p.get("reissued"))),
                event_id,
            ),
        )
    elif kind == "checkin.revocation_lifted":
        lift_in(conn, key)
    elif kind == "checkin.ticket_added":
        add_ticket(conn, p, origin)


def add_ticket(conn: sqlite3.Connection, p: dict, origin: str) -> bool:
    """A reissued code on the guest list: the attendee's own row copied from this kit's list (the ledger
    names no person), the type by its name. An existing key is left alone. True if a row was added."""
    key, old_key = p["ticket_key"], p.get("replaces", "")
    if conn.execute("SELECT 1 FROM checkin_tickets WHERE ticket_key = ?", (key,)).fetchone():
        return False
    old = (
        conn.execute("SELECT * FROM checkin_tickets WHERE ticket_key = ?", (old_key,)).fetchone()
        if old_key
        else None
    )
    conn.execute(
        "INSERT INTO checkin_tickets (ticket_key, order_code, name, last_name, email, ticket_type, status, attention,"
        " valid_from, valid_until, comment, source, phone, postcode, birth_date, consent, row_hash)"
        " VALUES (?,?,?,?,?,?,'valid',?,?,?,?,?,?,?,?,?,'')",
        (
            key,
            p.get("order_code") or (old["order_code"] if old else ""),
            old["name"] if old else "",
            old["last_name"] if old else "",
            old["email"] if old else "",
            p.get("ticket_type") or "",
            int(bool(p.get("attention"))),
            p.get("valid_from"),
            p.get("valid_until"),
            f"reissued from {old_key[:40]}" if old_key else "reissued",
            f"reissue:{origin}",
            old["phone"] if old else "",
            old["postcode"] if old else "",
            old["birth_date"] if old else "",
            old["consent"] if old else "",
        ),
    )
    row = conn.execute(
        "SELECT id, name, email, order_code FROM checkin_tickets WHERE ticket_key = ?", (key,)
    ).fetchone()
    conn.execute(
        "INSERT INTO checkin_tickets_fts (rowid, name, email, order_code) VALUES (?,?,?,?)", tuple(row)
    )
    if old is not None:  # the old code no longer counts as expected: the new one stands for the guest
        conn.execute(
            "UPDATE checkin_tickets SET status = 'reissued' WHERE ticket_key = ? AND status = 'valid'",
            (old_key,),
        )
    return True
