"""Reconciliation across kits for a site: where money, stock and admissions do not add up.

Reads the events kits uploaded (``pos.*`` and ``checkin.*``; other types are counted and left alone),
the documents HQ handed out (price lists, stock allocations, attendee lists) and the imported card
settlements. Times come from HQ's ``event_time``: the kit's clock, never later than HQ received it.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sync.hq import documents, integrity, schema
from sync.hq.admissions import attendance, double_admissions
from sync.hq.incidents import COLUMNS as INCIDENT_COLUMNS
from sync.hq.incidents import incident_rows
from sync.hq.numbers import DROP_COLUMNS, FIGURE_COLUMNS, SLOT_COLUMNS, numbers_tables
from sync.hq.refdocs import count_rsvps, count_tickets, parse_catalogue
from sync.hq.sections import Ev, Report, Section, as_int, format_cents, sign
from sync.hq.settlements import CardPayment, load_settlements, match_card_payments

log = logging.getLogger("fieldkit.hq.reconcile")


REPORTED = ("pos.", "checkin.", "lead.")


def load_events(engine: Engine, site: str | None, since: datetime | None = None,
                until: datetime | None = None) -> tuple[list[Ev], list[str], Counter]:
    """The events the report reads, in kit and seq order; other types only counted (by the database)."""
    e, k = schema.events, schema.kits
    reported = sa.or_(*(e.c.type.like(prefix + "%") for prefix in REPORTED))
    query = (sa.select(e.c.kit, e.c.id, e.c.type, e.c.payload, e.c.event_time, e.c.time_trusted)
             .select_from(e.join(k, k.c.kit == e.c.kit)).where(reported).order_by(e.c.kit, e.c.seq))
    others = (sa.select(e.c.type, sa.func.count()).select_from(e.join(k, k.c.kit == e.c.kit))
              .where(sa.not_(reported)).group_by(e.c.type))
    kit_query = sa.select(k.c.kit).order_by(k.c.kit)
    if site:
        query, kit_query, others = query.where(k.c.site == site), kit_query.where(k.c.site == site), others.where(k.c.site == site)
    if since:
        query, others = query.where(e.c.event_time >= since), others.where(e.c.event_time >= since)
    if until:
        query, others = query.where(e.c.event_time < until), others.where(e.c.event_time < until)
    events, skipped = [], Counter()
    loads = json.JSONDecoder().decode
    with engine.connect() as conn:
        kits = list(conn.execute(kit_query).scalars())
        skipped.update({t: int(n) for t, n in conn.execute(others)})
        for kit, id_, type_, text, at, trusted in conn.execute(query):
            if not type_.startswith(REPORTED):  # LIKE is case-blind on SQLite
                skipped[type_] += 1
                continue
            try:
                payload = loads(text)
            except ValueError:
                skipped["unreadable payload"] += 1
                continue
            if at.tzinfo is None:
                at = at.replace(tzinfo=UTC)
            events.append(Ev(kit, id_, type_, payload, at, bool(trusted)))
    return events, kits, skipped


def _sales(events: list[Ev]) -> list[Ev]:
    return [ev for ev in events if ev.type in ("pos.sale", "pos.refund") and isinstance(ev.p.get("lines", []), list)]


def build_report(engine: Engine, site: str | None = None, card_match_minutes: int = 10, tz: str = "UTC",
                 currency: str = "EUR", since: datetime | None = None, until: datetime | None = None) -> Report:
    """The report for a site (None: every site) and, for one event at a site, a time range [since, until)."""
    events, kits, skipped = load_events(engine, site, since, until)
    zone = ZoneInfo(tz)
    catalogues = _catalogues(engine, kits, site)
    sales = _sales(events)
    currency = next((ev.p["currency"] for ev in sales if isinstance(ev.p.get("currency"), str)), currency)
    sections = [
        _sales_by_product(sales),
        _sales_by_payment(sales),
        _stock(sales, catalogues),
        _cash(events),
        _cards(engine, sales, card_match_minutes, since, until),
        double_admissions(events, zone),
        _price_differences(sales, catalogues),
    ]
    attended, per_hour = attendance(engine, site, events, sales, zone)
    sections.append(attended)
    doc = documents.latest_content(engine, "checkin.attendees", site)
    figures, slot_rows, drop_rows, numbers = numbers_tables(events, count_tickets(doc[1]) if doc else None, zone,
                                                            count_rsvps(doc[1]) if doc else None)
    sections.append(Section("numbers", "The evening's numbers", FIGURE_COLUMNS, figures,
                            note="Rehearsal scans, undone admissions and voided sales are left out."))
    sections.append(Section("slots", "Per run-sheet slot", SLOT_COLUMNS, slot_rows,
                            note=f"{numbers['help']['slot_people_in']}; {numbers['help']['slot_conversion_per_100']}."))
    sections.append(Section("drops", "Live drops", DROP_COLUMNS, drop_rows, flag="status",
                            note="Units sold on every kit of the site; two kits that could not see each other may sell the last ones twice."))
    sections.append(Section("incidents", "Incidents", INCIDENT_COLUMNS, incident_rows(events, zone), flag="status",
                            note="Logged on any kit of the site (by staff or by the kit itself); one row per incident."))
    sections.append(Section("admissions_per_hour", f"Admissions per hour ({tz})", ["hour", "admissions"],
                            [[h, n] for h, n in per_hour]))
    sections.append(integrity.report_section(engine, kits))
    notes = []
    untrusted = sum(1 for ev in events if not ev.trusted)
    if untrusted:
        notes.append(f"{untrusted} events come from a kit whose clock was not confirmed (or ran ahead of HQ): "
                     "their times are bounded by when HQ received them.")
    for type_, n in sorted(skipped.items()):
        notes.append(f"{n} events of type {type_} are not part of the reconciliation.")
    by_kit: dict[str, int] = defaultdict(int)
    for ev in sales:
        by_kit[ev.kit] += sign(ev) * as_int(ev.p.get("total_cents"))
    charts = {"sales_by_kit": sorted(by_kit.items()), "admissions_per_hour": per_hour}
    period = " to ".join(b.astimezone(zone).isoformat(timespec="minutes") if b else "…" for b in (since, until)) \
        if since or until else ""
    return Report(site, datetime.now(UTC).isoformat(timespec="seconds"), currency, kits, sections, charts, notes, period)


def parse_bound(text: str | None, tz: str) -> datetime | None:
    """'2026-11-21' or '2026-11-21T18:00' in the given time zone (or with its own offset) → an aware time."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a date like 2026-11-21 or a time like 2026-11-21T18:00") from None
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(tz))


def _catalogues(engine: Engine, kits: list[str], site: str | None) -> dict[str, dict]:
    """Each kit's price list: the pos.catalogue its manifest resolves to (documents.manifest_for_kit's
    precedence), each document read once however many kits share it, not three queries per kit."""
    t = schema.documents
    with engine.connect() as conn:
        sites = dict(conn.execute(sa.select(schema.kits.c.kit, schema.kits.c.site)).all())
        metas = [dict(r._mapping) for r in conn.execute(
            sa.select(t.c.id, t.c.scope, t.c.scope_value, t.c.version).where(t.c.kind == "pos.catalogue"))]
    contents: dict[int, bytes] = {}
    out = {}
    for kit in kits:
        kit_site = sites.get(kit) or site or ""
        applies = [m for m in metas if m["scope"] == "all" or (m["scope"] == "site" and m["scope_value"] == kit_site)
                   or (m["scope"] == "kit" and m["scope_value"] == kit)]
        if not applies:
            out[kit] = {}
            continue
        best = min(applies, key=lambda m: (documents.SCOPE_RANK[m["scope"]], -m["version"]))
        if best["id"] not in contents:
            contents[best["id"]] = documents.document_content(engine, best["id"], kit, kit_site)[1]
        out[kit] = parse_catalogue(contents[best["id"]], kit)
    return out


def _sales_by_product(sales: list[Ev]) -> Section:
    qty: dict[tuple[str, str], int] = defaultdict(int)
    total: dict[tuple[str, str], int] = defaultdict(int)
    names: dict[str, str] = {}
    for ev in sales:
        for ln in ev.p.get("lines", []):
            if not isinstance(ln, dict) or not ln.get("sku"):
                continue
            key = (ev.kit, str(ln["sku"]))
            qty[key] += sign(ev) * as_int(ln.get("qty"))
            total[key] += sign(ev) * as_int(ln.get("total_cents"))
            names.setdefault(str(ln["sku"]), f"{ln.get('name', '')} {ln.get('variant', '')}".strip())
    rows = [[kit, sku, names.get(sku, ""), qty[(kit, sku)], total[(kit, sku)]] for kit, sku in sorted(qty)]
    kits = {k for k, _ in qty}
    if len(kits) > 1:
        for sku in sorted({s for _, s in qty}):
            rows.append(["all kits", sku, names.get(sku, ""), sum(v for (k, s), v in qty.items() if s == sku),
                         sum(v for (k, s), v in total.items() if s == sku)])
    return Section("sales_by_product", "Sales by kit and product (refunds subtracted)",
                   ["kit", "sku", "product", "qty", "total"], rows, money=("total",))


def _sales_by_payment(sales: list[Ev]) -> Section:
    count: dict[tuple[str, str], int] = defaultdict(int)
    amount: dict[tuple[str, str], int] = defaultdict(int)
    for ev in sales:
        for pay in ev.p.get("payments", []):
            if isinstance(pay, dict):
                key = (ev.kit, str(pay.get("method", "?")))
                count[key] += 1
                amount[key] += sign(ev) * as_int(pay.get("amount_cents"))
    return Section("sales_by_payment", "Takings by kit and payment method", ["kit", "method", "payments", "amount"],
                   [[k, m, count[(k, m)], amount[(k, m)]] for k, m in sorted(count)], money=("amount",))


def _stock(sales: list[Ev], catalogues: dict[str, dict]) -> Section:
    sold: dict[tuple[str, str], int] = defaultdict(int)
    for ev in sales:
        for ln in ev.p.get("lines", []):
            if isinstance(ln, dict) and ln.get("sku") and ln.get("moves_stock", True):
                sold[(ev.kit, str(ln["sku"]))] += sign(ev) * as_int(ln.get("qty"))
    rows = []
    keys = set(sold) | {(kit, sku) for kit, cat in catalogues.items() for sku, e in cat.items() if e.stock is not None}
    for kit, sku in sorted(keys):
        entry = catalogues.get(kit, {}).get(sku)
        allocated = entry.stock if entry else None
        n = sold.get((kit, sku), 0)
        if allocated is None:
            status = "no allocation"
        elif n > allocated:
            status = f"OVERSOLD BY {n - allocated}"
        else:
            status = "ok"
        rows.append([kit, sku, entry.name if entry else "", "" if allocated is None else allocated, n,
                     "" if allocated is None else allocated - n, status])
    return Section("stock", "Stock sold against stock allocated", ["kit", "sku", "product", "allocated", "sold",
                   "remaining", "status"], rows, flag="status",
                   note="Allocation: the stock column of the catalogue HQ handed to each kit (stock_<kit> wins).")


def _cash(events: list[Ev]) -> Section:
    shifts: dict[tuple[str, str], dict] = {}

    def shift(kit: str, sid: str) -> dict:
        return shifts.setdefault((kit, sid), {"number": "", "opened": "", "closed": "", "float": 0, "sales": 0,
                                              "refunds": 0, "moves": 0, "expected_kit": None, "counted": None})

    for ev in events:
        p = ev.p
        if ev.type == "pos.shift_opened" and p.get("id"):
            s = shift(ev.kit, p["id"])
            s.update(number=p.get("number", ""), opened=str(p.get("at", "")), float=as_int(p.get("float_cents")))
        elif ev.type == "pos.shift_closed" and p.get("id"):
            s = shift(ev.kit, p["id"])
            s.update(closed=str(p.get("at", "")), counted=as_int(p.get("counted_cents"), None),
                     expected_kit=as_int(p.get("expected_cash_cents"), None))
        elif ev.type == "pos.cash_moved" and p.get("shift_id"):
            shift(ev.kit, p["shift_id"])["moves"] += as_int(p.get("amount_cents"))
        elif ev.type in ("pos.sale", "pos.refund") and p.get("shift_id"):
            cash = sum(as_int(pay.get("amount_cents")) for pay in p.get("payments", [])
                       if isinstance(pay, dict) and pay.get("method") == "cash")
            s = shift(ev.kit, p["shift_id"])
            if sign(ev) > 0:
                s["sales"] += cash
            else:
                s["refunds"] += cash
    rows = []
    for (kit, _sid), s in sorted(shifts.items(), key=lambda kv: (kv[0][0], str(kv[1]["number"]))):
        expected = s["float"] + s["sales"] - s["refunds"] + s["moves"]
        counted = s["counted"]
        if counted is None:
            status = "open (not counted yet)"
        elif s["expected_kit"] is not None and s["expected_kit"] != expected:
            status = "KIT AND HQ DISAGREE ON EXPECTED CASH"
        elif counted < expected:
            status = f"SHORT BY {format_cents(expected - counted)}"
        elif counted > expected:
            status = f"OVER BY {format_cents(counted - expected)}"
        else:
            status = "ok"
        rows.append([kit, s["number"], s["opened"], s["closed"], s["float"], s["sales"], s["refunds"], s["moves"],
                     expected, s["expected_kit"], counted, None if counted is None else counted - expected, status])
    return Section("cash", "Cash per shift: counted against expected",
                   ["kit", "shift", "opened", "closed", "float", "cash_sales", "cash_refunds", "cash_in_out",
                    "expected", "expected_by_kit", "counted", "difference", "status"], rows,
                   money=("float", "cash_sales", "cash_refunds", "cash_in_out", "expected", "expected_by_kit", "counted",
                          "difference"), flag="status",
                   note="Expected = float + cash sales − cash refunds ± cash in/out, from the uploaded events.")


def _cards(engine: Engine, sales: list[Ev], window_minutes: int, since: datetime | None,
           until: datetime | None) -> Section:
    payments = []
    for ev in sales:
        for pay in ev.p.get("payments", []):
            if isinstance(pay, dict) and pay.get("method") == "card":
                payments.append(CardPayment(ev.kit, str(ev.p.get("receipt", "")), sign(ev) * as_int(pay.get("amount_cents")),
                                            str(pay.get("reference", "") or ""), ev.at))
    margin = timedelta(minutes=window_minutes)
    settled = [s for s in load_settlements(engine) if s["paid_at"] is None or (
        (since is None or s["paid_at"] >= since - margin) and (until is None or s["paid_at"] < until + margin))]
    rows = match_card_payments(payments, settled, window_minutes)
    columns = ["status", "kit", "receipt", "payment_cents", "payment_reference", "payment_time", "settlement_cents",
               "settlement_reference", "settlement_time", "settlement_file"]
    return Section("cards", "Card payments against the card terminal's settlement", columns,
                   [[r[c] for c in columns] for r in rows], money=("payment_cents", "settlement_cents"), flag="status",
                   note=f"Matched by reference, else by the same amount within {window_minutes} minutes.")


def _price_differences(sales: list[Ev], catalogues: dict[str, dict]) -> Section:
    rows = []
    for ev in sales:
        if sign(ev) < 0:
            continue
        cat = catalogues.get(ev.kit, {})
        for ln in ev.p.get("lines", []):
            if not isinstance(ln, dict) or not ln.get("sku"):
                continue
            entry = cat.get(str(ln["sku"]))
            unit, discount = as_int(ln.get("unit_cents")), as_int(ln.get("discount_cents"))
            if not cat:
                continue
            if entry is None or entry.price_cents is None:
                status = "NOT IN THE PRICE LIST"
                listed = None
            elif unit != entry.price_cents:
                status = "PRICE DIFFERS"
                listed = entry.price_cents
            elif discount:
                status = "discounted"
                listed = entry.price_cents
            else:
                continue
            rows.append([ev.kit, ev.p.get("receipt", ""), ln["sku"], as_int(ln.get("qty")), unit, listed,
                         None if listed is None else unit - listed, discount, status])
    return Section("prices", "Prices charged that differ from the price list",
                   ["kit", "receipt", "sku", "qty", "unit_charged", "unit_listed", "unit_difference", "line_discount",
                    "status"], rows, money=("unit_charged", "unit_listed", "unit_difference", "line_discount"),
                   flag="status", note="Against the catalogue HQ handed to each kit.")
