"""Reissue at the door, a door's own revocation, and a lead lifting one.

A guest whose code was shared, screenshotted by someone else or lost gets a new one: the old code is
revoked with the reason (``checkin.revoked``, ``reissued: true``) and a new random secret joins the
guest list for the same attendee and ticket type (``checkin.ticket_added``), both in one transaction
with their projection, so a reissue the screen announced survives a power cut. The site link carries
both to the other doors; the sync agent carries them to HQ. The new code is a QR code holding its own
human-readable form (``RE-7Q2M-XP4A-9TZ3-RW5K``, 80 random bits), so staff can also type it.
"""

from __future__ import annotations

import logging
import re
import secrets

from checkin.revocations import MAX_REASON, revocation
from checkin.scans import CheckinError, apply_event
from checkin.validate import DoorRules, KeyRing, Ticket, _row_ticket, find_ticket
from kit.db import Database
from kit.ledger import Ledger

log = logging.getLogger("fieldkit.checkin.reissue")
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U to misread
REISSUED_RE = re.compile(r"^RE(-[0-9A-HJKMNP-TV-Z]{4}){4}$")


def new_secret() -> str:
    return "RE-" + "-".join("".join(secrets.choice(ALPHABET) for _ in range(4)) for _ in range(4))


def resolve(conn, text: str, keyring: KeyRing) -> Ticket:
    """The ticket TEXT names: its code (a list secret or a signed code), its order code, or the attendee id."""
    text = (text or "").strip()
    if not text:
        raise CheckinError("give the ticket's code, its order code or the attendee id")
    row = conn.execute("SELECT * FROM checkin_tickets WHERE ticket_key = ?", (text,)).fetchone()
    if row is None and text.isdigit():
        row = conn.execute("SELECT * FROM checkin_tickets WHERE id = ?", (int(text),)).fetchone()
    if row is None:
        rows = conn.execute(
            "SELECT * FROM checkin_tickets WHERE order_code = ? COLLATE NOCASE AND source != 'rehearsal'"
            " AND status NOT IN ('reissued')",
            (text,),
        ).fetchall()
        if len(rows) > 1:
            raise CheckinError(
                f"{len(rows)} tickets have order code {text}: give the ticket's code or attendee id"
            )
        row = rows[0] if rows else None
    if row is not None:
        return _row_ticket(row)
    found = find_ticket(conn, text, keyring, False)
    if isinstance(found, Ticket):
        return found  # a signed code the list does not hold: its type comes from the key's product table
    raise CheckinError(
        f"unknown ticket {text[:40]!r}: not a code, order code or attendee id on this kit's list"
    )


def _refuse_if_revoked(conn, ticket: Ticket) -> None:
    row = revocation(conn, ticket.key)
    if row is not None or ticket.status in ("revoked", "reissued", "blocked"):
        status = row["status"] if row is not None else ticket.status
        done = " (reissued already)" if (row is not None and row["reissued"]) or status == "reissued" else ""
        raise CheckinError(
            f"this ticket is {'blocked' if status == 'blocked' else 'revoked'} already{done}: "
            "nothing to reissue"
        )


def reissue(
    db: Database,
    ledger: Ledger,
    rules: DoorRules,
    keyring: KeyRing,
    ticket: str,
    reason: str,
    *,
    by: str,
    identity: str,
    now: float | None = None,
) -> dict:
    """Revoke ``ticket`` and add a new code for the same attendee and type; returns what to print and show.
    ``identity`` says how the guest was confirmed (second_check, lead_override, cli)."""
    reason = (reason or "").strip()[:MAX_REASON]
    if not reason:
        raise CheckinError("say why the ticket is reissued (e.g. 'code shared online')")
    with db.transaction() as conn:
        t = resolve(conn, ticket, keyring)
        _refuse_if_revoked(conn, t)
        now = ledger.clock.time() if now is None else now
        new = new_secret()
        revoked = ledger.append(
            conn,
            "checkin.revoked",
            {
                "ticket_key": t.key,
                "status": "revoked",
                "reason": reason,
                "door": rules.door,
                "at": now,
                "by": by[:64],
                "reissued": True,
                "identity": identity,
            },
        )
        apply_event(conn, revoked.as_dict())
        added = ledger.append(
            conn,
            "checkin.ticket_added",
            {
                "ticket_key": new,
                "replaces": t.key,
                "ticket_type": t.ticket_type,
                "order_code": t.order_code,
                "attention": t.attention,
                "valid_from": t.valid_from,
                "valid_until": t.valid_until,
                "door": rules.door,
                "at": now,
                "by": by[:64],
                "reason": reason,
            },
        )
        apply_event(conn, added.as_dict())
    log.info(
        "event=ticket_reissued old=%s door=%s by=%s identity=%s seq=%s",
        t.key[:20],
        rules.door,
        by,
        identity,
        added.seq,
    )
    return {
        "ticket_key": new,
        "old_ticket_key": t.key,
        "name": t.name,
        "ticket_type": t.ticket_type,
        "order_code": t.order_code,
        "reason": reason,
        "door": rules.door,
        "at": now,
        "time": rules.clock_text(now),
        "seq": added.seq,
        "revoked_seq": revoked.seq,
    }


def revoke(
    db: Database,
    ledger: Ledger,
    rules: DoorRules,
    keyring: KeyRing,
    ticket: str,
    reason: str,
    *,
    by: str,
    blocked: bool = False,
    now: float | None = None,
) -> dict:
    """A lead revokes (or blocks) a code at the door, with the reason: a ledger event shared with the site."""
    reason = (reason or "").strip()[:MAX_REASON]
    if not reason:
        raise CheckinError("say why the ticket is revoked")
    with db.transaction() as conn:
        t = resolve(conn, ticket, keyring)
        _refuse_if_revoked(conn, t)
        now = ledger.clock.time() if now is None else now
        event = ledger.append(
            conn,
            "checkin.revoked",
            {
                "ticket_key": t.key,
                "status": "blocked" if blocked else "revoked",
                "reason": reason,
                "door": rules.door,
                "at": now,
                "by": by[:64],
                "reissued": False,
            },
        )
        apply_event(conn, event.as_dict())
    log.info("event=ticket_revoked ticket=%s blocked=%s by=%s seq=%s", t.key[:20], blocked, by, event.seq)
    return {"ticket_key": t.key, "status": "blocked" if blocked else "revoked", "seq": event.seq}


def lift(
    db: Database,
    ledger: Ledger,
    rules: DoorRules,
    keyring: KeyRing,
    ticket: str,
    reason: str,
    *,
    by: str,
    now: float | None = None,
) -> dict:
    """A lead lifts a revocation (a file's, this door's or a peer's) with the reason: a ledger event."""
    reason = (reason or "").strip()[:MAX_REASON]
    if not reason:
        raise CheckinError("say why the revocation is lifted")
    with db.transaction() as conn:
        text = (ticket or "").strip()
        key = text if revocation(conn, text) is not None else resolve(conn, text, keyring).key
        if revocation(conn, key) is None:
            raise CheckinError(
                "this ticket is not revoked here (a refund in the attendee list is lifted by a"
                " corrected list)"
            )
        now = ledger.clock.time() if now is None else now
        event = ledger.append(
            conn,
            "checkin.revocation_lifted",
            {"ticket_key": key, "reason": reason, "door": rules.door, "at": now, "by": by[:64]},
        )
        apply_event(conn, event.as_dict())
    log.info("event=revocation_lifted ticket=%s by=%s seq=%s", key[:20], by, event.seq)
    return {"ticket_key": key, "seq": event.seq}


def print_job(result: dict, event: str, job_id: str) -> dict:
    """The new code on the receipt printer (``pos/cmd/print``, kit/topics.py): a QR code the printer draws
    itself (ESC/POS ``GS ( k``) and the code in letters. No name: the slip may be left on the counter."""
    lines: list[dict] = [{"text": "NEW TICKET", "align": "center", "bold": True, "size": 2}]
    if event:
        lines.append({"text": event, "align": "center"})
    lines += [
        {"text": result["ticket_type"] or "Ticket", "align": "center", "bold": True},
        {"qr": result["ticket_key"]},
        {"text": result["ticket_key"], "align": "center", "bold": True},
        {"text": f"Reissued {result['time']} at {result['door']}", "align": "center"},
        {"text": "Your old code no longer admits.", "align": "center"},
        {"cut": True},
    ]
    return {"id": job_id, "source": "checkin.reissue", "lines": lines}


def qr_svg(code: str) -> str:
    """The new code as an inline SVG QR code for the screen (no image file, nothing from the internet)."""
    import segno

    return segno.make(code, error="m").svg_inline(scale=6, border=2, dark="#000", light="#fff", omitsize=True)
