"""The rehearsal sheet: practice tickets that produce every verdict, for staff to drill before doors open.

Practice tickets are signed by the kit's rehearsal key, which only counts while the door is in
rehearsal; outside it they are refused. Their guest-list rows (source ``rehearsal``) stay out of
counts, search and the printed guest list. The sheet is made once and reprinted identically.
"""

from __future__ import annotations

import html
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import segno
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from checkin import signed
from checkin.issue import make_ticket, type_item
from checkin.keys import rehearsal_key
from checkin.validate import DoorRules


@dataclass(frozen=True)
class PracticeTicket:
    label: str
    payload: str
    expect: str  # what the door should show, in staff words
    how: str = ""


# (label, ticket type, status, attention, valid window, expected words)
ROWS = (
    ("Valid ticket", "Practice", "valid", 0, None, "GREEN — admit (verdict admit)"),
    ("Flagged ticket", "Practice", "valid", 1, None, "AMBER — admit and call a lead (requires special attention)"),
    ("Refunded ticket", "Practice", "revoked", 0, None, "RED — refunded, do not admit (revoked)"),
    ("Blocked ticket", "Practice", "blocked", 0, None, "AMBER — blocked, call a lead, do not admit"),
    ("Wrong day", "Practice", "valid", 0, "later", "RED — not valid yet (not_yet_valid)"),
    ("Expired ticket", "Practice", "valid", 0, "yesterday", "RED — expired"),
)


def practice_tickets(conn: sqlite3.Connection, secrets_dir: Path, rules: DoorRules) -> list[PracticeTicket]:
    """The sheet's tickets (made on first use, inside the caller's transaction)."""
    key = rehearsal_key(conn, secrets_dir)
    rows = conn.execute("SELECT ticket_key, name, comment FROM checkin_tickets WHERE source = 'rehearsal' ORDER BY id"
                        ).fetchall()
    if len(rows) < len(ROWS):
        conn.execute("DELETE FROM checkin_tickets WHERE source = 'rehearsal'")
        now = int(time.time())
        for n, (label, type_name, status, attention, window, expect) in enumerate(ROWS, start=1):
            vf = now + 365 * 86400 if window == "later" else 0
            vu = now - 86400 if window == "yesterday" else 0
            _seed, text = make_ticket(key, type_item(conn, type_name), valid_from=vf, valid_until=vu)
            conn.execute(
                "INSERT INTO checkin_tickets (ticket_key, order_code, name, last_name, ticket_type, status, attention,"
                " comment, source) VALUES (?,?,?,?,?,?,?,?, 'rehearsal')",
                (text, f"PRACTICE-{n}", f"Pat Practice ({label})", "Practice", type_name, status, attention,
                 f"{label}|{expect}"))
        conn.execute("INSERT INTO checkin_tickets_fts(checkin_tickets_fts) VALUES('rebuild')")
        rows = conn.execute("SELECT ticket_key, name, comment FROM checkin_tickets WHERE source = 'rehearsal'"
                            " ORDER BY id").fetchall()
    sheet = []
    for r in rows:
        label, expect = r["comment"].split("|", 1)
        sheet.append(PracticeTicket(label, r["ticket_key"], expect))
    first = sheet[0]
    sheet.insert(1, PracticeTicket("Duplicate", first.payload, "RED — already checked in (already_in)",
                                   "scan ticket 1 a second time"))
    foreign = signed.sign(Ed25519PrivateKey.from_private_bytes(b"\x07" * 32), signed.TicketPayload("FORGED000", 1))
    sheet.append(PracticeTicket("Forged ticket", foreign, "RED — signature does not match (invalid_signature)"))
    sheet.append(PracticeTicket("Not a ticket", "https://example.org/not-a-ticket", "RED — not on the list (unknown)"))
    if rules.allowed_types:
        other = make_ticket(key, type_item(conn, "Practice other door"))[1]
        sheet.append(PracticeTicket("Other door's ticket", other, "RED — not valid at this door"))
    sheet.append(PracticeTicket("Name search", "", "search 'Pat Practice', admit 'Valid ticket' by hand with a reason",
                                "no code: practise the dead-phone case"))
    return sheet


def sheet_html(sheet: list[PracticeTicket], door: str) -> str:
    cells = []
    for n, t in enumerate(sheet, start=1):
        qr = (f"<img alt='' src='{segno.make(t.payload, error='m').png_data_uri(scale=4, border=2)}'>"
              if t.payload else "<div class='noqr'>no code</div>")
        cells.append(f"<div class='t'><h2>{n}. {html.escape(t.label)}</h2>{qr}<p><b>Expect:</b> {html.escape(t.expect)}</p>"
                     + (f"<p>{html.escape(t.how)}</p>" if t.how else "") + "</div>")
    # Three tickets a row on paper; on a phone's screen as many as fit, never wider than the screen.
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'><title>Rehearsal sheet</title><style>"
            "body{font:11pt sans-serif;margin:1cm}.grid{display:grid;gap:10px;"
            "grid-template-columns:repeat(auto-fill,minmax(min(100%,14rem),1fr))}"
            "@media print{.grid{grid-template-columns:repeat(3,1fr)}}@media screen and (max-width:600px){body{margin:.5rem}}"
            "img{max-width:100%;height:auto}"
            ".t{border:2px dashed #000;padding:8px;page-break-inside:avoid;overflow-wrap:anywhere}h2{font-size:12pt;margin:0 0 4px}"
            ".noqr{height:120px;display:flex;align-items:center;justify-content:center;border:1px solid #999}"
            "</style></head><body><main>"
            f"<h1>REHEARSAL ONLY — practice tickets for {html.escape(door)}</h1>"
            "<p>Switch the door to rehearsal first. Outside rehearsal these tickets are refused.</p>"
            f"<div class='grid'>{''.join(cells)}</div></main></body></html>")


def sheet_print_job(sheet: list[PracticeTicket], door: str, job_id: str) -> dict:
    """A ``pos/cmd/print`` job (kit/topics.py) for the receipt printer."""
    lines: list[dict] = [{"text": "REHEARSAL ONLY", "align": "center", "bold": True, "size": 2},
                         {"text": f"Practice tickets - {door}", "align": "center"}]
    for n, t in enumerate(sheet, start=1):
        lines.append({"text": f"{n}. {t.label}", "bold": True})
        if t.payload:
            lines.append({"qr": t.payload})
        lines.append({"text": f"Expect: {t.expect}"})
        if t.how:
            lines.append({"text": t.how})
    lines.append({"cut": True})
    return {"id": job_id, "source": "checkin.rehearsal", "lines": lines}
