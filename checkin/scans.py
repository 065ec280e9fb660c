"""Recording scans: every verdict is a ``checkin.scanned`` ledger event written with its projection.

The same ``apply_event`` builds the projection live and during ``fieldkit ledger rebuild``, so a
rebuild gives identical tables. Undo and the door's mode (rehearsal, entry/exit) are events too.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass

from checkin.validate import Decision, DoorRules, KeyRing, Ticket, clean_payload, colour, decide, find_ticket
from kit.db import Database
from kit.ledger import Ledger

log = logging.getLogger("fieldkit.checkin")

# Shared with the other doors of the site (checkin/peers.py); revocations and reissued tickets too (issue 15).
SHARED_TYPES = ("checkin.scanned", "checkin.undone", "checkin.revoked", "checkin.revocation_lifted",
                "checkin.ticket_added")
METHODS = ("scan", "second_check", "lead_override")


class CheckinError(Exception):
    """A request a person made cannot be done (unknown scan to undo, unknown ticket); says why."""


@dataclass
class DoorState:
    rehearsal: bool = False
    direction: str = "entry"


SCAN_STATE_SQL = ("SELECT (SELECT rehearsal FROM checkin_door_state WHERE id = 1),"
                  " (SELECT direction FROM checkin_door_state WHERE id = 1), (SELECT COUNT(*) FROM checkin_keys),"
                  " (SELECT COALESCE(MAX(id), 0) FROM checkin_keys)")


def door_state(conn: sqlite3.Connection) -> DoorState:
    row = conn.execute("SELECT rehearsal, direction FROM checkin_door_state WHERE id = 1").fetchone()
    return DoorState(bool(row[0]), row[1]) if row else DoorState()


def _result(event_seq: int, event_id: str, payload: dict) -> dict:
    return {**payload, "seq": event_seq, "event_id": event_id,
            "colour": colour(payload["verdict"], payload["attention"])}


def record_scan(
    db: Database,
    ledger: Ledger,
    rules: DoorRules,
    payload: str | bytes,
    *,
    keyring: KeyRing,
    source: str = "api",
    now: float | None = None,
    direction: str | None = None,
) -> dict:
    """Validate a scanned code and record the verdict; returns the verdict as a dict (see topics.py)."""
    with db.transaction() as conn:
        result = record_in(conn, ledger, rules, payload, keyring=keyring, source=source, now=now, direction=direction)
    log_scan(rules, result)
    return result


def record_in(conn, ledger: Ledger, rules: DoorRules, payload: str | bytes, *, keyring: KeyRing, source: str,
              now: float | None = None, direction: str | None = None) -> dict:
    """The scan inside the caller's write transaction (one scan, or one of a group commit)."""
    text = clean_payload(payload)
    # The door's mode and the key table's stamp in one round trip: another process may change either.
    mode_rehearsal, mode_direction, key_count, key_max = conn.execute(SCAN_STATE_SQL).fetchone()
    rehearsal = bool(mode_rehearsal)
    now = ledger.clock.time() if now is None else now
    found = find_ticket(conn, text, keyring, rehearsal, (key_count, key_max))
    decision = decide(conn, rules, found, now=now, direction=direction or mode_direction or "entry",
                      rehearsal=rehearsal)
    return _append(conn, ledger, rules, decision, source=source, now=now, rehearsal=rehearsal)


def log_scan(rules: DoorRules, result: dict) -> None:
    log.info("event=scan verdict=%s door=%s source=%s rehearsal=%s seq=%s code=%r", result["verdict"], rules.door,
             result["source"], result["rehearsal"], result["seq"], result["code_excerpt"] or result["order_code"])


def manual_admit(db: Database, ledger: Ledger, rules: DoorRules, ticket_key: str, reason: str, *,
                 now: float | None = None, by: str = "door", identifiers: dict | None = None) -> dict:
    """Admit by hand: the rules still apply, the signature is skipped. With ``identifiers`` it is the second
    check (two things the ticket shop knows must match, checkin/identity.py); without, a lead's override,
    which needs a reason. The method is recorded on the admission."""
    from checkin.identity import confirm

    reason = (reason or "").strip()
    if identifiers is None and not reason:
        raise CheckinError("say why you admit by hand (e.g. 'phone dead, ID checked')")
    with db.transaction() as conn:
        row = conn.execute("SELECT * FROM checkin_tickets WHERE ticket_key = ?", (ticket_key,)).fetchone()
        if row is None:
            raise CheckinError("no such ticket on the guest list")
        method = "lead_override"
        if identifiers is not None:
            matched = confirm(row, identifiers)  # raises CheckinError naming what did not match
            method, reason = "second_check", ("second check: " + ", ".join(matched) + (f"; {reason}" if reason else ""))
        state = door_state(conn)
        now = ledger.clock.time() if now is None else now
        ticket = Ticket(row["ticket_key"], row["name"], row["order_code"], row["email"], row["ticket_type"],
                        row["status"], bool(row["attention"]), row["valid_from"], row["valid_until"], row["comment"])
        decision = decide(conn, rules, ticket, now=now, direction="entry", rehearsal=state.rehearsal)
        result = _append(conn, ledger, rules, decision, source=f"manual:{by}", now=now, rehearsal=state.rehearsal,
                         manual_reason=reason[:200], method=method)
    log.info("event=manual_admit method=%s verdict=%s door=%s seq=%s reason=%r", method, result["verdict"], rules.door,
             result["seq"], reason)
    return result


def _append(conn, ledger: Ledger, rules: DoorRules, d: Decision, *, source: str, now: float, rehearsal: bool,
            manual_reason: str = "", method: str = "scan") -> dict:
    t = d.ticket
    # No personal data in the ledger (it goes to HQ and the hub and outlives the erasure): the ticket's key,
    # type and order code, never the name; the screen and the peers join the name from their own list.
    payload = {
        "ticket_key": t.key if t else "",
        "verdict": d.verdict,
        "admitted": d.admitted,
        "attention": d.attention,
        "attention_reason": d.attention_reason,
        "reason": d.reason,
        "door": rules.door,
        "source": source,
        "rehearsal": rehearsal,
        "method": method,
        "ticket_type": t.ticket_type if t else "",
        "order_code": t.order_code if t else "",
        "at": now,
        "code_excerpt": d.code_excerpt,
        "manual_reason": manual_reason,
    }
    event = ledger.append(conn, "checkin.scanned", payload)
    apply_event(conn, event.as_dict())
    return {**_result(event.seq, event.id, payload), "name": t.name if t else ""}


def undo_scan(db: Database, ledger: Ledger, seq: int, reason: str, by: str = "lead") -> dict:
    """Undo a mistaken admission (by the scan's seq): a ``checkin.undone`` event, the scan stays in the ledger."""
    with db.transaction() as conn:
        row = conn.execute("SELECT * FROM checkin_scans WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            raise CheckinError(f"no scan with number {seq}")
        if not row["admitted"] and row["verdict"] != "exit":
            raise CheckinError(f"scan {seq} was {row['verdict']}: only admissions and exits can be undone")
        if row["undone"]:
            raise CheckinError(f"scan {seq} is already undone")
        payload = {"scan_seq": seq, "scan_event_id": row["event_id"], "ticket_key": row["ticket_key"],
                   "reason": reason.strip()[:200], "by": by, "rehearsal": bool(row["rehearsal"])}
        event = ledger.append(conn, "checkin.undone", payload)
        apply_event(conn, event.as_dict())
    log.info("event=scan_undone seq=%s by=%s", seq, by)
    return {**payload, "seq": event.seq}


def set_mode(db: Database, ledger: Ledger, *, rehearsal: bool | None = None, direction: str | None = None,
             by: str = "lead") -> DoorState:
    if direction not in (None, "entry", "exit"):
        raise CheckinError("direction must be entry or exit")
    with db.transaction() as conn:
        current = door_state(conn)
        new = DoorState(current.rehearsal if rehearsal is None else rehearsal, direction or current.direction)
        event = ledger.append(conn, "checkin.mode", {"rehearsal": new.rehearsal, "direction": new.direction, "by": by})
        apply_event(conn, event.as_dict())
    log.info("event=door_mode rehearsal=%s direction=%s by=%s", new.rehearsal, new.direction, by)
    return new


REVOCATION_TYPES = ("checkin.revoked", "checkin.revocation_lifted", "checkin.ticket_added")


def scan_method(p: dict) -> str:
    """How the guest got in; a hand admission from before methods were recorded is the lead's override."""
    method = p.get("method")
    if method in METHODS:
        return method
    return "lead_override" if p.get("manual_reason") else "scan"


def apply_event(conn: sqlite3.Connection, event: dict) -> None:
    """Project one of this kit's checkin events (live and during ``ledger rebuild``)."""
    p, kind = event["payload"], event["type"]
    if kind == "checkin.scanned":
        conn.execute(
            "INSERT INTO checkin_scans (seq, event_id, hlc, at, ticket_key, verdict, admitted, attention, rehearsal,"
            " door, source, name, ticket_type, order_code, reason, manual_reason, method)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (event["seq"], event["id"], event["hlc"], p.get("at", 0.0), p.get("ticket_key", ""), p["verdict"],
             int(bool(p.get("admitted"))), int(bool(p.get("attention"))), int(bool(p.get("rehearsal"))),
             p.get("door", ""), p.get("source", ""), p.get("name", ""), p.get("ticket_type", ""),
             p.get("order_code", ""), p.get("reason", ""), p.get("manual_reason", ""), scan_method(p)),
        )
    elif kind == "checkin.undone":
        conn.execute("UPDATE checkin_scans SET undone = 1 WHERE event_id = ?", (p["scan_event_id"],))
    elif kind in REVOCATION_TYPES:
        from checkin.revocations import apply_revocation_event

        apply_revocation_event(conn, kind, p, origin=event.get("kit", ""), event_id=event["id"])
    elif kind == "checkin.mode":
        conn.execute(
            "INSERT INTO checkin_door_state (id, rehearsal, direction, changed_at, changed_by) VALUES (1,?,?,?,?)"
            " ON CONFLICT(id) DO UPDATE SET rehearsal=excluded.rehearsal, direction=excluded.direction,"
            " changed_at=excluded.changed_at, changed_by=excluded.changed_by",
            (int(p["rehearsal"]), p["direction"], (event["hlc"] >> 16) / 1000, p.get("by", "")),
        )
