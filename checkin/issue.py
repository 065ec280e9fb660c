"""The kit's own signed tickets, for organisers with no ticket shop: one PNG per ticket plus a CSV list.

Tickets use the pretix_sig1 layout, so the one verifier serves both; the CSV imports as an attendee
list (names can be filled in before importing it on the door kits).
"""

from __future__ import annotations

import csv
import io
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import segno
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from checkin import signed
from checkin.signed import human_code

SEED_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud at the door
CSV_HEADERS = ["Order code", "Ticket type", "Name", "E-mail", "Secret"]


@dataclass(frozen=True)
class IssuedTicket:
    code: str  # human-readable, e.g. K7Q-2MX-P4A
    ticket_type: str
    secret: str  # the QR text


def type_item(conn: sqlite3.Connection, name: str) -> int:
    """The product number a ticket type is signed with (made on first use, kept for the door's display)."""
    row = conn.execute("SELECT item FROM checkin_ticket_types WHERE name = ?", (name,)).fetchone()
    if row:
        return row[0]
    item = (conn.execute("SELECT COALESCE(MAX(item), 0) FROM checkin_ticket_types").fetchone()[0] or 0) + 1
    conn.execute("INSERT INTO checkin_ticket_types (item, name) VALUES (?, ?)", (item, name))
    return item


def make_ticket(key: Ed25519PrivateKey, item: int, *, valid_from: int = 0, valid_until: int = 0) -> tuple[str, str]:
    """(seed, QR text) of one new signed ticket."""
    seed = "".join(secrets.choice(SEED_ALPHABET) for _ in range(9))
    return seed, signed.sign(key, signed.TicketPayload(seed, item, 0, 0, valid_from, valid_until))


def ticket_png(secret: str, caption: str, subtitle: str = "") -> bytes:
    """A QR code with the human-readable code under it (big enough to read from a phone at the door)."""
    from PIL import Image, ImageDraw, ImageFont  # here: the web process issues practice tickets, never images

    buf = io.BytesIO()
    segno.make(secret, error="m", micro=False).save(buf, kind="png", scale=8, border=4)
    qr = Image.open(io.BytesIO(buf.getvalue())).convert("L")
    canvas = Image.new("L", (qr.width, qr.height + 110), 255)
    canvas.paste(qr, (0, 0))
    draw = ImageDraw.Draw(canvas)
    big, small = ImageFont.load_default(size=40), ImageFont.load_default(size=24)
    for text, font, y in ((caption, big, qr.height + 5), (subtitle, small, qr.height + 60)):
        width = draw.textlength(text, font=font)
        draw.text(((canvas.width - width) / 2, y), text, fill=0, font=font)
    out = io.BytesIO()
    canvas.save(out, format="PNG", optimize=True)
    return out.getvalue()


def issue_tickets(conn: sqlite3.Connection, key: Ed25519PrivateKey, ticket_type: str, count: int, out_dir: Path, *,
                  event_name: str = "", valid_from: int = 0, valid_until: int = 0) -> list[IssuedTicket]:
    if count < 1 or count > 100_000:
        raise ValueError("count must be between 1 and 100000")
    if not ticket_type.strip():
        raise ValueError("give the ticket type a name")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    item = type_item(conn, ticket_type.strip())
    issued = []
    for _ in range(count):
        seed, secret = make_ticket(key, item, valid_from=valid_from, valid_until=valid_until)
        ticket = IssuedTicket(human_code(seed), ticket_type.strip(), secret)
        (out_dir / f"ticket-{ticket.code}.png").write_bytes(
            ticket_png(secret, ticket.code, " · ".join(p for p in (event_name, ticket.ticket_type) if p)))
        issued.append(ticket)
    with (out_dir / "tickets.csv").open("a" if (out_dir / "tickets.csv").exists() else "w", newline="") as f:
        writer = csv.writer(f)
        if f.tell() == 0:
            writer.writerow(CSV_HEADERS)
        for t in issued:
            writer.writerow([t.code, t.ticket_type, "", "", t.secret])
    return issued
