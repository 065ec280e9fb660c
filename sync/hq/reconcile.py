"""Reconciliation across kits for a site: where money, stock and admissions do not add up.

Reads the events kits uploaded (``pos.*`` and ``checkin.*``; other types are counted and left alone),
the documents HQ handed out (price lists, stock allocations, attendee lists) and the imported card
settlements. Times come from HQ's ``event_time``: the kit's clock, never later than HQ received it.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sync.hq import documents, facts, integrity, report_facts, schema
from sync.hq.admissions import attendance, double_admissions
from sync.hq.incidents import COLUMNS as INCIDENT_COLUMNS
from sync.hq.incidents import incident_rows
from sync.hq.numbers import DROP_COLUMNS, FIGURE_COLUMNS, SLOT_COLUMNS, numbers_tables
from sync.hq.refdocs import count_rsvps, count_tickets, parse_catalogue
from sync.hq.report_facts import Scope
from sync.hq.sections import Ev, Report, Section, as_int, format_cents
from sync.hq.settlements import CardPayment, load_settlements, match_card_payments

log = logging.getLogger("fieldkit.hq.reconcile")


REPORTED = ("pos.", "checkin.", "lead.")


def load_events(engine: Engine, site: str | None, since: datetime | None = None,
                until: datetime | None = None) -> tuple[list[Ev], list[str], Counter]:
    """The events the report reads one by one, in kit and seq order: the reported types a night has a few
    of (shifts, drops, run-sheet, incidents); sales, refunds and scans are read as facts (sync/hq/facts.py),
    other types only counted (by the database)."""
    e, k = schema.events, schema.kits
    reported = sa.or_(*(e.c.type.like(prefix + "%") for prefix in REPORTED))
    query = (sa.select(e.c.kit, e.c.id, e.c.type, e.c.payload, e.c.event_time, e.c.time_trusted)
             .select_from(e.join(k, k.c.kit == e.c.kit)).where(reported, e.c.type.not_in(facts.TYPES))
             .order_by(e.c.kit, e.c.seq))
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


def build_report(engine: Engine, site: str | None = None, card_match_minutes: int = 10, tz: str = "UTC",
                 currency: str = "EUR", since: datetime | None = None, until: datetime | None = None) -> Report:
    """The report for a site (None: every site) and, for one event at a site, a time range [since, until)."""
    # On PostgreSQL the chain check is the database's own work (it hashes every event): it runs beside
    # the rest. On SQLite a reading connection holds the write lock (store.make_engine): one at a time.
    beside = engine.dialect.name == "postgresql"
    with ThreadPoolExecutor(1) as pool:
        events, kits, skipped = load_events(engine, site, since, until)
        chains = pool.submit(integrity.report_section, engine, kits) if beside else None
        zone = ZoneInfo(tz)
        scope = Scope(site, since, until)
        catalogues = _catalogues(engine, kits, site)
        settled = load_settlements(engine)
        doc = documents.latest_content(engine, "checkin.attendees", site)
        with engine.connect() as conn:
            currency = report_facts.currency(conn, scope) or currency
            sections = [
                _sales_by_product(conn, scope),
                _sales_by_payment(conn, scope),
                _stock(conn, scope, catalogues),
                _cash(conn, scope, events),
                _cards(conn, scope, settled, card_match_minutes),
                double_admissions(conn, scope, zone),
                _price_differences(conn, scope, catalogues),
            ]
            attended, per_hour = attendance(conn, scope, zone, count_tickets(doc[1]) if doc else None)
            series = report_facts.metric_series(conn, scope)
            untrusted = _untrusted(conn, scope)
            by_kit = report_facts.takings_by_kit(conn, scope)
        sections.append(attended)
        figures, slot_rows, drop_rows, numbers = numbers_tables(series, events, count_tickets(doc[1]) if doc else None,
                                                                zone, count_rsvps(doc[1]) if doc else None)
        sections.append(Section("numbers", "The evening's numbers", FIGURE_COLUMNS, figures,
                                note="Rehearsal scans, undone admissions and voided sales are left out."))
        sections.append(Section("slots", "Per run-sheet slot", SLOT_COLUMNS, slot_rows,
                                note=f"{numbers['help']['slot_people_in']}; {numbers['help']['slot_conversion_per_100']}."))
        sections.append(Section("drops", "Live drops", DROP_COLUMNS, drop_rows, flag="status",
                                note="Units sold on every kit of the site; two kits that could not see each other may "
                                     "sell the last ones twice."))
        sections.append(Section("incidents", "Incidents", INCIDENT_COLUMNS, incident_rows(events, zone), flag="status",
                                note="Logged on any kit of the site (by staff or by the kit itself); one row per incident."))
        sections.append(Section("admissions_per_hour", f"Admissions per hour ({tz})", ["hour", "admissions"],
                                [[h, n] for h, n in per_hour]))
        sections.append(chains.result() if chains else integrity.report_section(engine, kits))
    notes = []
    untrusted += sum(1 for ev in events if not ev.trusted)
    if untrusted:
        notes.append(f"{untrusted} events come from a kit whose clock was not confirmed (or ran ahead of HQ): "
                     "their times are bounded by when HQ received them.")
    for type_, n in sorted(skipped.items()):
        notes.append(f"{n} events of type {type_} are not part of the reconciliation.")
    charts = {"sales_by_kit": by_kit, "admissions_per_hour": per_hour}
    period = " to ".join(b.astimezone(zone).isoformat(timespec="minutes") if b else "…" for b in (since, until)) \
        if since or until else ""
    return Report(site, datetime.now(UTC).isoformat(timespec="seconds"), currency, kits, sections, charts, notes, period)


def _untrusted(conn, scope: Scope) -> int:
    """Sales, refunds and scans whose time HQ could not vouch for (the others are counted as they are read)."""
    e = schema.events
    q = sa.select(sa.func.count()).select_from(e).where(e.c.type.in_(facts.TYPES), ~e.c.time_trusted)
    if scope.site:
        q = q.where(e.c.kit.in_(sa.select(schema.kits.c.kit).where(schema.kits.c.site == scope.site)))
    if scope.since:
        q = q.where(e.c.event_time >= scope.since)
    if scope.until:
        q = q.where(e.c.event_time < scope.until)
    return int(conn.execute(q).scalar() or 0)


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


def _sales_by_product(conn, scope: Scope) -> Section:
    found = report_facts.products(conn, scope)
    names: dict[str, str] = {}
    for _, sku, name, _, _ in found:
        names.setdefault(sku, name)
    rows = [[kit, sku, names[sku], int(qty), int(total)] for kit, sku, _, qty, total in found]
    if len({kit for kit, *_ in found}) > 1:
        for sku in sorted(names):
            rows.append(["all kits", sku, names[sku], sum(int(r[3]) for r in found if r[1] == sku),
                         sum(int(r[4]) for r in found if r[1] == sku)])
    return Section("sales_by_product", "Sales by kit and product (refunds subtracted)",
                   ["kit", "sku", "product", "qty", "total"], rows, money=("total",))


def _sales_by_payment(conn, scope: Scope) -> Section:
    return Section("sales_by_payment", "Takings by kit and payment method", ["kit", "method", "payments", "amount"],
                   [[k, m, int(n), int(a)] for k, m, n, a in report_facts.payments(conn, scope)], money=("amount",))


def _stock(conn, scope: Scope, catalogues: dict[str, dict]) -> Section:
    sold = report_facts.stock_sold(conn, scope)
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


def _cash(conn, scope: Scope, events: list[Ev]) -> Section:
    shifts: dict[tuple[str, str], dict] = {}

    def shift(kit: str, sid: str) -> dict:
        return shifts.setdefault((kit, sid), {"number": "", "opened": "", "closed": "", "float": 0, "sales": 0,
                                              "refunds": 0, "moves": 0, "expected_kit": None, "counted": None})

    for ev in events:
        p = ev.p
        if ev.type == "pos.shift_opened" and p.get("id"):
            s = shift(ev.kit, str(p["id"])[:64])
            s.update(number=p.get("number", ""), opened=str(p.get("at", "")), float=as_int(p.get("float_cents")))
        elif ev.type == "pos.shift_closed" and p.get("id"):
            s = shift(ev.kit, str(p["id"])[:64])
            s.update(closed=str(p.get("at", "")), counted=as_int(p.get("counted_cents"), None),
                     expected_kit=as_int(p.get("expected_cash_cents"), None))
        elif ev.type == "pos.cash_moved" and p.get("shift_id"):
            shift(ev.kit, str(p["shift_id"])[:64])["moves"] += as_int(p.get("amount_cents"))
    named, cash = report_facts.shift_cash(conn, scope)
    for kit, sid in named:
        shift(kit, sid)
    for (kit, sid), (taken, paid_out) in cash.items():
        s = shift(kit, sid)
        s["sales"] += taken
        s["refunds"] += paid_out
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


CARD_COLUMNS = ["status", "kit", "receipt", "payment_cents", "payment_reference", "payment_time", "settlement_cents",
                "settlement_reference", "settlement_time", "settlement_file"]


def _cards(conn, scope: Scope, settlements: list[dict], window_minutes: int) -> Section:
    margin = timedelta(minutes=window_minutes)
    settled = [s for s in settlements if s["paid_at"] is None or (
        (scope.since is None or s["paid_at"] >= scope.since - margin)
        and (scope.until is None or s["paid_at"] < scope.until + margin))]
    note = f"Matched by reference, else by the same amount within {window_minutes} minutes."
    if not settled:
        # Nothing to match against yet: one line per kit says so, not one per card payment of the night.
        rows = [["NO SETTLEMENT IMPORTED", kit, f"{n} card payment{'' if n == 1 else 's'}", total, "", "", None, "", "", ""]
                for kit, n, total in report_facts.card_totals(conn, scope)]
        return Section("cards", "Card payments against the card terminal's settlement", CARD_COLUMNS, rows,
                       money=("payment_cents", "settlement_cents"), flag="status",
                       note=note + " Import the terminal's settlement file (`fieldkit hq settlements import`) to "
                                   "match each payment.")
    payments = [CardPayment(*p) for p in report_facts.card_payments(conn, scope)]
    rows = match_card_payments(payments, settled, window_minutes)
    return Section("cards", "Card payments against the card terminal's settlement", CARD_COLUMNS,
                   [[r[c] for c in CARD_COLUMNS] for r in rows], money=("payment_cents", "settlement_cents"),
                   flag="status", note=note)


def _price_differences(conn, scope: Scope, catalogues: dict[str, dict]) -> Section:
    kits = sorted(k for k, cat in catalogues.items() if cat)
    flagged = []
    for kit, sku, unit in report_facts.price_combos(conn, scope, kits):
        entry = catalogues[kit].get(sku)
        if entry is None or entry.price_cents is None or unit != entry.price_cents:
            flagged.append((kit, sku, unit))
    rows = []
    for kit, receipt, sku, qty, unit, discount in report_facts.price_lines(conn, scope, kits, flagged):
        entry = catalogues[kit].get(sku)
        if entry is None or entry.price_cents is None:
            status, listed = "NOT IN THE PRICE LIST", None
        elif unit != entry.price_cents:
            status, listed = "PRICE DIFFERS", entry.price_cents
        elif discount:
            status, listed = "discounted", entry.price_cents
        else:
            continue
        rows.append([kit, receipt, sku, int(qty), int(unit), listed, None if listed is None else int(unit) - listed,
                     int(discount), status])
    return Section("prices", "Prices charged that differ from the price list",
                   ["kit", "receipt", "sku", "qty", "unit_charged", "unit_listed", "unit_difference", "line_discount",
                    "status"], rows, money=("unit_charged", "unit_listed", "unit_difference", "line_discount"),
                   flag="status", note="Against the catalogue HQ handed to each kit.")
