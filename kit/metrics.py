"""The evening's numbers: pure functions over ledger events, the same on the kit and at HQ.

Organisers judge a night by short-horizon figures: attendance against tickets sold, the time from
doors open to the first sale, conversion per 100 admitted, and which slot converted. Everything is
computed from the ledger events that kit/topics.py and the features define (``checkin.scanned`` /
``checkin.undone``, ``pos.sale`` / ``pos.refund``, ``pos.pickup_collected``, ``lead.slot_started`` /
``lead.slot_ended``, ``pos.drop_started`` / ``pos.drop_sold`` / ``pos.drop_unlocked``, ``lead.signup``, ``lead.doors_open``), so the kit's lead screen and HQ's report cannot disagree, and neither imports a
feature. Rehearsal scans, undone admissions and voided sales never count.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from kit.topics import slot_drop_id

BUCKET_SECONDS = 15 * 60
# An attendee list's registration / RSVP column (Luma's approval_status, Eventbrite's attendee status,
# a form's "RSVP"), and the answers that mean the person said they are coming.
RSVP_HEADERS = ("rsvp", "registration status", "registration_status", "approval status", "approval_status",
                "attendee status", "attendee_status", "attending", "going")
RSVP_YES = {"yes", "y", "going", "attending", "accepted", "approved", "registered", "confirmed", "attended",
            "checked in", "checked_in"}
HELP = {
    "admitted": "people admitted: distinct tickets with an admission (rehearsal scans and undone admissions left out)",
    "tickets_sold": "tickets on the imported attendee list",
    "attendance_percent": "people admitted per 100 tickets sold",
    "rsvps": "people on the imported list whose RSVP or registration status says they are coming",
    "attendance_of_rsvps_percent": "people admitted per 100 RSVPs (where the list carries an RSVP status)",
    "exits": "exit scans (people who went out; they may come back)",
    "admissions_by_method": "admissions by how the guest got in: scan, second_check (two identifiers the ticket shop"
                            " knows), lead_override (a lead's reason)",
    "arrivals_per_15_min": "admissions in each quarter hour (kit.timezone)",
    "doors_open_at": "when the lead said the doors are open (fieldkit runsheet doors-open), else the first admission",
    "first_sale_at": "the first merch sale after the doors opened",
    "minutes_to_first_sale": "minutes from doors open to the first sale (go-live)",
    "sales": "merch sales (voided ones left out; refunds do not undo a purchase)",
    "sales_per_100": "sales per 100 people admitted",
    "pickups_collected_per_100": "pre-ordered pickups handed over per 100 people admitted",
    "stall_conversion": "the merch stall: sales ÷ people admitted",
    "signups_per_100": "guests who gave their e-mail (with consent) per 100 people admitted",
    "drop_sales_per_100": "sales with live-drop units per 100 people admitted (drop redemptions)",
    "drop_sell_through_percent": "per drop: units sold on every kit per 100 units offered",
    "drop_minutes_to_sell_out": "per drop: minutes from its start until the last unit was sold",
    "drop_oversold": "per drop: units sold beyond the quantity (kits that could not see each other)",
    "drop_member_unlocks": "per drop: member tickets scanned to buy in its members-first window",
    "drop_member_tickets_reused": "per drop: member tickets that unlocked it on two kits (a link down)",
    "slot_people_in": "per slot: the most people inside at once during the slot (admitted minus exits)",
    "slot_buyers": "per slot: sales made during the slot",
    "slot_conversion_per_100": "per slot: sales during the slot per 100 people inside",
}


ADMISSION_METHODS = ("scan", "second_check", "lead_override")


def admission_method(payload: dict) -> str:
    """How a ``checkin.scanned`` admission got in; one from before methods were recorded that carries a hand
    admission's reason counts as the lead's override, any other as a scan."""
    method = payload.get("method")
    if isinstance(method, str) and method in ADMISSION_METHODS:
        return method
    return "lead_override" if payload.get("manual_reason") else "scan"


@dataclass(frozen=True)
class MetricEvent:
    kit: str
    type: str
    payload: dict
    at: float  # unix seconds: when it happened (the payload's own time where it has one)
    id: str = ""  # the ledger event id (an undo names the scan it undoes by it)


def event_time(payload: dict, wall_time: str | datetime | None) -> float:
    """When an event happened: its payload's ``at`` (unix seconds or ISO) if it has one, else the ledger's time."""
    at = payload.get("at")
    if isinstance(at, int | float) and not isinstance(at, bool) and math.isfinite(at):
        return float(at)
    for value in (at, wall_time):
        if isinstance(value, datetime):
            return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    return 0.0


def _iso(at: float | None, tz) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, tz).isoformat(timespec="seconds")


def _per_100(n: int, of: int) -> float | None:
    return None if not of else round(100 * n / of, 1)


def rsvps(headers: list[str], rows: Iterable[list[str]]) -> int | None:
    """People an attendee list says are coming, by its RSVP / registration status column; None without one."""
    wanted = [i for i, h in enumerate(headers) if h.strip().lower().replace("-", " ") in RSVP_HEADERS]
    if not wanted:
        return None
    i = wanted[0]
    return sum(1 for row in rows if i < len(row) and row[i].strip().lower() in RSVP_YES)


def evening_numbers(events: Iterable[MetricEvent], tz, tickets_sold: int | None = None,
                    rsvp_count: int | None = None) -> dict:
    """Every figure of the evening, each with a line of help (``help``); keys of rates end in ``_per_100``."""
    events = sorted(events, key=lambda e: e.at)
    # Payloads from HQ's store are another kit's words: only text ids count, whatever else a field holds.
    undone = {(e.kit, e.payload.get("scan_event_id")) for e in events
              if e.type == "checkin.undone" and isinstance(e.payload.get("scan_event_id"), str)}
    voided = {e.payload.get("original_id") for e in events if e.type == "pos.refund" and e.payload.get("kind") == "void"
              and isinstance(e.payload.get("original_id"), str)}
    admissions, exits, sales = [], [], []
    for e in events:
        p = e.payload
        if e.type == "checkin.scanned" and not p.get("rehearsal") and (e.kit, e.id) not in undone:
            if p.get("admitted"):
                admissions.append((e.at, str(p.get("ticket_key") or f"{e.kit}:{e.at}"), admission_method(p)))
            elif p.get("verdict") == "exit":
                exits.append(e.at)
        elif e.type == "pos.sale" and p.get("kind", "sale") == "sale" and str(p.get("id")) not in voided:
            sales.append(e.at)
    return numbers_from(admissions, exits, sales, events, tz, tickets_sold, rsvp_count)


def numbers_from(admissions: list[tuple[float, str, str]], exits: list[float], sales: list[float],
                 others: list[MetricEvent], tz, tickets_sold: int | None = None, rsvp_count: int | None = None) -> dict:
    """The figures from what the busy types boil down to — admissions (time, person, method), exit times and
    the times of the sales that count, each in time order — and the other events (run-sheet, drops, pickups,
    sign-ups), in time order. The kit gets these from its ledger (above), HQ from its facts tables."""
    pickups = [e for e in others if e.type == "pos.pickup_collected"]
    people = {person for _, person, _ in admissions}
    by_method = dict.fromkeys(ADMISSION_METHODS, 0)
    for _, _, method in admissions:
        by_method[method] += 1
    admitted = len(people)
    said_open = [e.at for e in others if e.type == "lead.doors_open"]
    doors_open = said_open[0] if said_open else admissions[0][0] if admissions else None
    after_open = bisect.bisect_left(sales, doors_open) if doors_open is not None else len(sales)
    first_sale = sales[after_open] if after_open < len(sales) else None
    buckets: dict[int, int] = {}
    for at, _, _ in admissions:
        start = int(at // BUCKET_SECONDS * BUCKET_SECONDS)
        buckets[start] = buckets.get(start, 0) + 1
    drop_list = _drops(others, tz)
    slots = _slots(others, [a[0] for a in admissions], exits, sales, tz, {d["drop_id"]: d for d in drop_list})
    drop_sales = len({str(e.payload.get("sale_id")) for e in others if e.type == "pos.drop_sold"})
    signups = sum(1 for e in others if e.type == "lead.signup")
    return {
        "attendance": {
            "admitted": admitted, "tickets_sold": tickets_sold,
            "attendance_percent": _per_100(admitted, tickets_sold or 0),
            "rsvps": rsvp_count, "attendance_of_rsvps_percent": _per_100(admitted, rsvp_count or 0),
            "exits": len(exits),
            "admissions_by_method": by_method,
            "arrivals_per_15_min": [{"from": _iso(at, tz), "admitted": n} for at, n in sorted(buckets.items())],
        },
        "go_live": {
            "doors_open_at": _iso(doors_open, tz), "first_sale_at": _iso(first_sale, tz),
            "minutes_to_first_sale": None if first_sale is None else round((first_sale - doors_open) / 60, 1),
        },
        "conversion": {
            "sales": len(sales), "sales_per_100": _per_100(len(sales), admitted),
            "pickups_collected": len(pickups), "pickups_collected_per_100": _per_100(len(pickups), admitted),
            "drop_sales": drop_sales, "drop_sales_per_100": _per_100(drop_sales, admitted),
            "signups": signups, "signups_per_100": _per_100(signups, admitted),
        },
        "drops": drop_list,
        "stall": {"buyers": len(sales), "admitted": admitted,
                  "stall_conversion": None if not admitted else round(len(sales) / admitted, 3)},
        "slots": slots,
        "help": HELP,
    }


def _slots(events: list[MetricEvent], admissions: list[float], exits: list[float], sales: list[float], tz,
           drops_by_id: dict) -> list[dict]:
    """Per slot, from the run-sheet's own start and end events (the earliest any kit recorded)."""
    found: dict[tuple, dict] = {}
    for e in events:
        if e.type not in ("lead.slot_started", "lead.slot_ended"):
            continue
        p = e.payload
        if not isinstance(p.get("runsheet"), str) or isinstance(p.get("slot"), bool) or not isinstance(p.get("slot"), int):
            continue
        key = (p["runsheet"], p["slot"])
        slot = found.setdefault(key, {"name": str(p.get("name", ""))[:80], "stage": str(p.get("stage", ""))[:40],
                                      "start": None, "end": None, "drop_id": slot_drop_id(*key)})
        which = "start" if e.type == "lead.slot_started" else "end"
        slot[which] = e.at if slot[which] is None else min(slot[which], e.at)
    # Who is inside after each move (exits before entries at the same moment); a slot's peak is the most
    # inside at its start or after any move during it. Slots never overlap: every move is looked at once.
    moves = sorted([(at, 1) for at in admissions] + [(at, -1) for at in exits])
    times = [at for at, _ in moves]
    inside_after = list(itertools.accumulate(step for _, step in moves))
    out = []
    started = sorted((s for s in found.values() if s["start"] is not None), key=lambda s: s["start"])
    for i, slot in enumerate(started):
        # Slots never overlap (the run-sheet refuses it): one with no end of its own (its sheet was
        # replaced, or no kit ran at its end) ended when the next began; the last one may still run.
        end = slot["end"] if slot["end"] is not None else started[i + 1]["start"] if i + 1 < len(started) else math.inf
        start = slot["start"]
        first, last = bisect.bisect_right(times, start), bisect.bisect_right(times, end)
        peak = inside_after[first - 1] if first else 0
        if last > first:
            peak = max(peak, max(inside_after[first:last]))
        buyers = bisect.bisect_left(sales, end) - bisect.bisect_left(sales, start)
        drop = drops_by_id.get(slot["drop_id"])  # the live drop this slot opened, if it did
        out.append({"name": slot["name"], "stage": slot["stage"], "start": _iso(start, tz),
                    "end": _iso(None if end == math.inf else end, tz), "people_in": max(peak, 0), "buyers": buyers,
                    "conversion_per_100": _per_100(buyers, max(peak, 0)),
                    "drop_sell_through_percent": drop["sell_through_percent"] if drop else None,
                    "drop_minutes_to_sell_out": drop["minutes_to_sell_out"] if drop else None})
    return out


def _drops(events: list[MetricEvent], tz) -> list[dict]:
    """Per live drop: quantity, units sold on every kit, sell-through, minutes to sell out, oversold."""
    found: dict[str, dict] = {}
    for e in events:
        p, drop_id = e.payload, e.payload.get("drop_id")
        if not isinstance(drop_id, str):
            continue
        if e.type == "pos.drop_started" and isinstance(p.get("quantity"), int) and not isinstance(p.get("quantity"), bool):
            found.setdefault(drop_id, {"sold": 0, "sold_out_at": None, "drop_id": drop_id}).update(
                name=str(p.get("name", ""))[:60], sku=str(p.get("sku", ""))[:64], quantity=p["quantity"],
                starts_at=event_time({"at": p.get("starts_at")}, None) or e.at)
        elif e.type == "pos.drop_unlocked" and isinstance(p.get("ticket_ref"), str):
            found.setdefault(drop_id, {"sold": 0, "sold_out_at": None, "drop_id": drop_id}).setdefault(
                "tickets", []).append(p["ticket_ref"])
        elif e.type == "pos.drop_sold" and isinstance(p.get("qty"), int) and not isinstance(p.get("qty"), bool):
            d = found.setdefault(drop_id, {"sold": 0, "sold_out_at": None, "drop_id": drop_id})
            d["sold"] += p["qty"]
            if "quantity" in d and d["sold_out_at"] is None and d["sold"] >= d["quantity"]:
                d["sold_out_at"] = e.at
    out = []
    for d in found.values():
        if "quantity" not in d:
            continue  # units sold from a drop whose start this ledger does not hold
        out.append({"drop_id": d["drop_id"], "name": d["name"], "sku": d["sku"], "quantity": d["quantity"], "sold": d["sold"],
                    "sell_through_percent": _per_100(min(d["sold"], d["quantity"]), d["quantity"]),
                    "minutes_to_sell_out": None if d["sold_out_at"] is None
                    else round((d["sold_out_at"] - d["starts_at"]) / 60, 1),
                    "oversold": max(0, d["sold"] - d["quantity"]), "start": _iso(d["starts_at"], tz),
                    "member_unlocks": len(d.get("tickets", [])),
                    "member_tickets_reused": len(d.get("tickets", [])) - len(set(d.get("tickets", [])))})
    return sorted(out, key=lambda d: d["start"] or "")
