"""Admissions at HQ: tickets admitted twice across kits, and attendance beside the merch figures."""

from __future__ import annotations

from collections import Counter, defaultdict
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine

from sync.hq import documents
from sync.hq.refdocs import count_tickets
from sync.hq.sections import Ev, Section, as_int, format_cents, sign

ADMIT_VERDICTS = ("admit",)  # a first entry; admit_reentry follows an exit and is not a double


def first_entries(events: list[Ev]) -> list[Ev]:
    undone = {ev.p.get("scan_event_id") for ev in events if ev.type == "checkin.undone"}
    return [ev for ev in events if ev.type == "checkin.scanned" and ev.p.get("admitted") is True
            and ev.p.get("verdict") in ADMIT_VERDICTS and not ev.p.get("rehearsal") and ev.id not in undone
            and ev.p.get("ticket_key")]


def double_admissions(events: list[Ev], zone: ZoneInfo) -> Section:
    by_ticket: dict[str, list[Ev]] = defaultdict(list)
    for ev in first_entries(events):
        by_ticket[str(ev.p["ticket_key"])].append(ev)
    rows = []
    for ticket, evs in sorted(by_ticket.items()):
        if len(evs) < 2:
            continue
        where = ", ".join(f"{ev.kit}/{ev.p.get('door', '')}".rstrip("/") for ev in evs)
        when = ", ".join(ev.at.astimezone(zone).strftime("%H:%M:%S") for ev in evs)
        # Admissions name the ticket and its order, never the person (docs/checkin.md): the order code
        # is what a lead looks up in the ticket shop.
        rows.append([ticket[:16], str(evs[0].p.get("order_code", ""))[:40], len(evs), where, when, "ADMITTED TWICE"
                     if len({ev.kit for ev in evs}) > 1 else "ADMITTED TWICE AT ONE KIT"])
    return Section("double_admissions", "Tickets admitted more than once", ["ticket", "order", "admissions", "kits",
                   "times", "status"], rows, flag="status",
                   note="First entries only: a re-entry after a recorded exit is not a double.")


def attendance(engine: Engine, site: str | None, events: list[Ev], sales: list[Ev],
                zone: ZoneInfo) -> tuple[Section, list[tuple[str, int]]]:
    admissions = first_entries(events)
    admitted = len({str(ev.p["ticket_key"]) for ev in admissions})
    doc = documents.latest_content(engine, "checkin.attendees", site)
    sold = count_tickets(doc[1]) if doc else None
    sale_count = sum(1 for ev in sales if sign(ev) > 0)
    items = sum(sign(ev) * as_int(ln.get("qty")) for ev in sales for ln in ev.p.get("lines", []) if isinstance(ln, dict))
    revenue = sum(sign(ev) * as_int(ev.p.get("total_cents")) for ev in sales)
    per_hour = Counter(ev.at.astimezone(zone).strftime("%Y-%m-%d %H:00") for ev in admissions)
    rows = [
        ["tickets sold (attendee list)", "" if sold is None else sold],
        ["people admitted", admitted],
        ["admitted of sold", "" if not sold else f"{100 * admitted / sold:.1f} %"],
        ["merch sales", sale_count],
        ["merch items (net of refunds)", items],
        ["merch takings", format_cents(revenue)],
        ["merch sales per 100 admitted", "" if not admitted else f"{100 * sale_count / admitted:.1f}"],
        ["merch takings per 100 admitted", "" if not admitted else format_cents(revenue * 100 // admitted)],
    ]
    section = Section("attendance", "Attendance and merch", ["figure", "value"], rows,
                      note="Money figures are in the report's currency; per-100 takings rounded down to the cent.")
    return section, sorted(per_hour.items())
