"""Admissions at HQ: tickets admitted twice across kits, and attendance beside the merch figures."""

from __future__ import annotations

from collections import Counter
from zoneinfo import ZoneInfo

from sync.hq import report_facts
from sync.hq.report_facts import Scope
from sync.hq.sections import Section, format_cents


def double_admissions(conn, scope: Scope, zone: ZoneInfo) -> Section:
    """First entries only (sync/hq/facts.py ``first_entry``: verdict admit, not a rehearsal, not undone): a
    re-entry after an exit is not a double."""
    rows = []
    for ticket, entries in sorted(report_facts.doubles(conn, scope).items()):
        where = ", ".join(f"{kit}/{door}".rstrip("/") for kit, door, _, _ in entries)
        when = ", ".join(at.astimezone(zone).strftime("%H:%M:%S") for _, _, at, _ in entries)
        # Admissions name the ticket and its order, never the person (docs/checkin.md): the order code
        # is what a lead looks up in the ticket shop.
        rows.append([ticket[:16], entries[0][3][:40], len(entries), where, when, "ADMITTED TWICE"
                     if len({kit for kit, *_ in entries}) > 1 else "ADMITTED TWICE AT ONE KIT"])
    return Section("double_admissions", "Tickets admitted more than once", ["ticket", "order", "admissions", "kits",
                   "times", "status"], rows, flag="status",
                   note="First entries only: a re-entry after a recorded exit is not a double.")


def attendance(conn, scope: Scope, zone: ZoneInfo, sold: int | None) -> tuple[Section, list[tuple[str, int]]]:
    """``sold``: the tickets on the attendee list HQ handed out (None without one)."""
    admitted = report_facts.admitted_people(conn, scope)
    sale_count, items, revenue = report_facts.merch_totals(conn, scope)
    per_hour: Counter = Counter()
    for start, n in report_facts.admissions_per_quarter(conn, scope):
        per_hour[start.astimezone(zone).strftime("%Y-%m-%d %H:00")] += n
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
