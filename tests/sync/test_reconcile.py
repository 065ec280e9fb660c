"""Reconciliation at HQ from events in the shapes pos and checkin record (and some it does not know)."""

from __future__ import annotations

import base64
import csv
import http.client
import io
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from kit.ledger import GENESIS, _chain_hash, canonical_json
from sync.hq import documents, store
from sync.hq.reconcile import build_report
from sync.hq.render import render
from sync.hq.sections import Report
from sync.hq.settlements import import_settlements

T0 = datetime(2026, 11, 21, 19, 0, tzinfo=UTC)
CATALOGUE = b"sku,name,variant,price,tax_rate,stock,stock_merch2\nTS-M,T-shirt,M,25.00,19,3,1\nSTICKER,Sticker,,2.00,19,100,\n"
ATTENDEES = b"code,name\n" + b"".join(f"T{i},Guest {i}\n".encode() for i in range(10))
SETTLEMENT = (b"Transaction ID;Amount;Currency;Date\nREF-1;20,00;EUR;2026-11-21 19:05:00\n"
              b";2,00;EUR;2026-11-21 19:13:00\nREF-X;7,00;EUR;2026-11-21 19:30:00\n")


class Kit:
    """Writes events the way a kit's ledger would, and uploads them to HQ."""

    def __init__(self, engine, kit: str, site: str):
        self.engine, self.kit, self.seq, self.prev = engine, kit, 0, GENESIS
        store.add_kit(engine, kit, site)
        self.shift = str(uuid.uuid4())

    def emit(self, type_: str, payload: dict, minutes: float = 0, synced: bool = True) -> str:
        self.seq += 1
        at = T0 + timedelta(minutes=minutes)
        rec = {"id": str(uuid.uuid4()), "kit": self.kit, "seq": self.seq, "type": type_, "payload": payload,
               "hlc": int(at.timestamp() * 1000) << 16, "wall_time": at.isoformat(), "clock_synced": synced}
        rec["hash"] = self.prev = _chain_hash(self.prev, self.seq, rec["id"], self.kit, type_, canonical_json(payload),
                                              rec["hlc"], rec["wall_time"], int(synced))
        assert store.ingest(self.engine, self.kit, [rec], received_at=T0 + timedelta(hours=5))[0].status == "stored"
        return rec["id"]

    def sale(self, receipt: str, lines: list[tuple[str, int, int]], payments: list[tuple[str, int, str]], minutes: float,
             kind: str = "sale") -> None:
        body_lines = [{"line_no": i, "sku": sku, "name": sku, "variant": "", "qty": qty, "unit_cents": unit, "tax_bp": 1900,
                       "discount_cents": 0, "total_cents": qty * unit, "tax_cents": 0} for i, (sku, qty, unit) in enumerate(lines, 1)]
        total = sum(ln["total_cents"] for ln in body_lines)
        self.emit("pos.sale" if kind == "sale" else "pos.refund", {
            "id": str(uuid.uuid4()), "receipt": receipt, "prefix": self.kit, "n": 1, "kind": kind, "shift_id": self.shift,
            "at": (T0 + timedelta(minutes=minutes)).isoformat(), "currency": "EUR", "subtotal_cents": total,
            "discount_cents": 0, "tax_cents": 0, "total_cents": total, "change_cents": 0, "lines": body_lines,
            "payments": [{"method": m, "amount_cents": a, "tendered_cents": a, "reference": r, "last4": ""}
                         for m, a, r in payments], "oversold": []}, minutes)

    def scan(self, ticket: str, verdict: str = "admit", minutes: float = 0, rehearsal: bool = False) -> str:
        return self.emit("checkin.scanned", {"ticket_key": ticket, "verdict": verdict, "admitted": verdict.startswith("admit"),
                                             "attention": False, "door": self.kit, "rehearsal": rehearsal,
                                             "name": f"Guest {ticket}", "at": (T0 + timedelta(minutes=minutes)).timestamp()},
                         minutes)


@pytest.fixture
def market(hq_engine):
    engine = hq_engine
    documents.put_document(engine, "pos.catalogue", CATALOGUE, "catalogue.csv", site="market")
    documents.put_document(engine, "checkin.attendees", ATTENDEES, "attendees.csv", site="market")
    import_settlements(engine, SETTLEMENT, "terminal.csv")
    m1, m2 = Kit(engine, "merch1", "market"), Kit(engine, "merch2", "market")
    d1, d2 = Kit(engine, "door1", "market"), Kit(engine, "door2", "market")
    other = Kit(engine, "faraway", "othersite")
    m1.emit("pos.shift_opened", {"id": m1.shift, "number": 1, "at": T0.isoformat(), "float_cents": 5000})
    m1.sale("merch1-1", [("TS-M", 2, 2500)], [("cash", 5000, "")], 1)
    m1.sale("merch1-2", [("TS-M", 1, 2000)], [("card", 2000, "REF-1")], 5)  # charged 20.00, listed 25.00
    m1.sale("merch1-3", [("STICKER", 1, 200)], [("card", 200, "")], 10)  # no reference: amount and time
    m1.emit("pos.cash_moved", {"id": "cm1", "shift_id": m1.shift, "amount_cents": -1000, "reason": "safe drop"}, 20)
    m1.emit("pos.shift_closed", {"id": m1.shift, "counted_cents": 8900, "expected_cash_cents": 9000,
                                 "difference_cents": -100, "at": (T0 + timedelta(hours=3)).isoformat()}, 180)
    m2.sale("merch2-1", [("TS-M", 2, 2500)], [("card", 5000, "REF-9")], 40)  # allocation 1: oversold
    m2.sale("merch2-2", [("STICKER", 1, 200)], [("cash", 200, "")], 41, kind="refund")
    d1.scan("A", minutes=2)
    d2.scan("A", minutes=70)  # the same ticket at the other door while the link was down
    d1.scan("B", minutes=3)
    d1.scan("B", verdict="exit", minutes=30)
    d1.scan("B", verdict="admit_reentry", minutes=45)
    d1.scan("C", minutes=4, rehearsal=True)
    undone = d2.scan("D", minutes=75)
    d2.emit("checkin.undone", {"scan_event_id": undone, "ticket_key": "D", "reason": "mistake"}, 76)
    d2.scan("E", minutes=200, verdict="admit")
    d1.emit("checkin.something_new", {"whatever": [1, 2]}, 5)
    d1.emit("cues.fired", {"cue": "sting"}, 6)
    d1.emit("checkin.scanned", {"ticket_key": None, "verdict": 5}, 7)  # damaged: ignored, never a crash
    other.sale("far-1", [("TS-M", 9, 2500)], [("cash", 22500, "")], 1)
    return engine


def rows(report, key: str) -> list[dict]:
    s = report.section(key)
    return [dict(zip(s.columns, r, strict=True)) for r in s.rows]


def test_sales_stock_cash_and_prices_add_up_per_kit(market):
    report = build_report(market, site="market")
    assert report.kits == ["door1", "door2", "merch1", "merch2"]
    by_product = {(r["kit"], r["sku"]): (r["qty"], r["total"]) for r in rows(report, "sales_by_product")}
    assert by_product[("merch1", "TS-M")] == (3, 7000)
    assert by_product[("merch2", "STICKER")] == (-1, -200)  # a refund
    assert by_product[("all kits", "TS-M")] == (5, 12000)
    assert ("faraway", "TS-M") not in by_product  # another site
    payments = {(r["kit"], r["method"]): r["amount"] for r in rows(report, "sales_by_payment")}
    assert payments == {("merch1", "cash"): 5000, ("merch1", "card"): 2200, ("merch2", "card"): 5000,
                        ("merch2", "cash"): -200}
    stock = {(r["kit"], r["sku"]): r for r in rows(report, "stock")}
    assert stock[("merch2", "TS-M")]["status"] == "OVERSOLD BY 1"
    assert (stock[("merch1", "TS-M")]["allocated"], stock[("merch1", "TS-M")]["sold"]) == (3, 3)
    assert stock[("merch1", "TS-M")]["status"] == "ok"
    cash = rows(report, "cash")
    assert [c["kit"] for c in cash] == ["merch1", "merch2"]
    assert cash[1]["status"] == "open (not counted yet)" and cash[1]["expected"] == -200
    assert (cash[0]["expected"], cash[0]["counted"], cash[0]["difference"]) == (9000, 8900, -100)
    assert cash[0]["status"] == "SHORT BY 1.00"
    prices = rows(report, "prices")
    assert [(p["receipt"], p["unit_charged"], p["unit_listed"], p["status"]) for p in prices] == [
        ("merch1-2", 2000, 2500, "PRICE DIFFERS")]


def test_card_payments_are_matched_by_reference_then_amount_and_time(market):
    cards = rows(build_report(market, site="market", card_match_minutes=10), "cards")
    status = {(r["receipt"], r["settlement_reference"]): r["status"] for r in cards}
    assert status[("merch1-2", "REF-1")] == "matched by reference"
    assert status[("merch1-3", "")] == "matched by amount and time"
    assert status[("merch2-1", "")] == "UNMATCHED PAYMENT"
    assert status[("", "REF-X")] == "UNMATCHED SETTLEMENT"
    tight = rows(build_report(market, site="market", card_match_minutes=1), "cards")
    assert {r["status"] for r in tight if r["receipt"] == "merch1-3"} == {"UNMATCHED PAYMENT"}


def test_admissions_twice_across_kits_and_attendance_figures(market):
    report = build_report(market, site="market")
    doubles = rows(report, "double_admissions")
    assert [(d["ticket"], d["admissions"], d["kits"], d["status"]) for d in doubles] == [
        ("A", 2, "door1/door1, door2/door2", "ADMITTED TWICE")]
    figures = {r["figure"]: r["value"] for r in rows(report, "attendance")}
    assert figures["tickets sold (attendee list)"] == 10
    assert figures["people admitted"] == 3  # A, B, E: not the rehearsal, not the undone one
    assert figures["admitted of sold"] == "30.0 %"
    assert figures["merch sales"] == 4
    assert figures["merch sales per 100 admitted"] == "133.3"
    assert figures["merch takings"] == "120.00"
    per_hour = dict(report.charts["admissions_per_hour"])
    assert per_hour == {"2026-11-21 19:00": 2, "2026-11-21 20:00": 1, "2026-11-21 22:00": 1}
    assert any("cues.fired" in n for n in report.notes) and any("checkin.something_new" not in n for n in report.notes)


def test_report_renders_as_text_csv_and_html(market):
    report = build_report(market, site="market")
    text = render(report, "text")
    assert "OVERSOLD BY 1" in text and "SHORT BY 1.00" in text
    table = list(csv.reader(io.StringIO(render(report, "csv", "cards"))))
    assert table[0][0] == "status" and ["UNMATCHED SETTLEMENT", "", "", "", "", "", "7.00", "REF-X",
                                         "2026-11-21T19:30:00+00:00", "terminal.csv:4"] in table
    page = render(report, "html")
    assert page.count("<svg") == 2 and "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")


def test_a_report_read_back_from_its_json_renders_exactly_as_the_report_itself(market):
    """The hub's web builds the site report in a child process and renders what it reads back (sync/site_report.py)."""
    report = build_report(market, site="market")
    again = Report.from_dict(json.loads(render(report, "json")))
    assert again.section("stock").flagged == report.section("stock").flagged > 0
    for fmt in ("text", "csv", "html"):
        assert render(again, fmt) == render(report, fmt)


def test_report_pages_need_an_admin_token(market):
    from sync.hq.testing import HQServer

    server = HQServer(market)
    try:
        token = store.add_admin(market, "alice")

        def get(path: str, auth: str | None):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            headers = {"Authorization": "Basic " + base64.b64encode(f"alice:{auth}".encode()).decode()} if auth else {}
            conn.request("GET", path, headers=headers)
            r = conn.getresponse()
            return r.status, r.getheader("Content-Type"), r.read().decode()

        assert get("/report?site=market", None)[0] == 401
        assert get("/report?site=market", "wrong")[0] == 401
        status, ctype, body = get("/report?site=market", token)
        assert status == 200 and ctype.startswith("text/html") and "ADMITTED TWICE" in body
        status, ctype, body = get("/report.csv?site=market&section=stock", token)
        assert status == 200 and ctype.startswith("text/csv") and "OVERSOLD BY 1" in body
        assert get("/report.csv?section=nope", token)[0] == 404
    finally:
        server.stop()


def test_one_event_at_a_site_is_a_time_range(market):
    from sync.hq.reconcile import parse_bound

    evening = build_report(market, site="market", since=parse_bound("2026-11-21T19:00", "UTC"),
                           until=parse_bound("2026-11-21T20:00", "UTC"))
    assert "2026-11-21T19:00+00:00 to 2026-11-21T20:00+00:00" in render(evening, "text")
    receipts = {r["receipt"] for r in rows(evening, "cards") if r["receipt"]}
    assert receipts == {"merch1-2", "merch1-3", "merch2-1"}
    assert dict(evening.charts["admissions_per_hour"]) == {"2026-11-21 19:00": 2}
    assert rows(evening, "double_admissions") == []  # the second admission of A came after 20:00
    late = build_report(market, site="market", since=parse_bound("2026-11-22", "UTC"))
    assert all(not s.rows for s in late.sections if s.key in ("sales_by_product", "cards", "double_admissions"))
    with pytest.raises(ValueError, match="not a date"):
        parse_bound("yesterday", "UTC")


def test_the_evenings_numbers_and_slots_come_from_the_same_functions_as_on_the_kit(market):
    stage = Kit(market, "stage1", "market")
    stage.emit("lead.slot_started", {"runsheet": "d" * 64, "slot": 0, "name": "Poetry", "stage": "Bench",
                                     "at": (T0 + timedelta(minutes=1)).timestamp()}, 1)
    stage.emit("lead.slot_ended", {"runsheet": "d" * 64, "slot": 0, "name": "Poetry", "stage": "Bench",
                                   "at": (T0 + timedelta(minutes=20)).timestamp()}, 20)
    merch = Kit(market, "merch3", "market")
    merch.emit("pos.drop_started", {"drop_id": "d-1234567", "name": "Posters", "sku": "POSTER", "quantity": 1,
                                    "starts_at": (T0 + timedelta(minutes=10)).timestamp()}, 10)
    for minute in (11, 12):  # two kits sold the last poster while they could not see each other
        merch.emit("pos.drop_sold", {"drop_id": "d-1234567", "qty": 1, "sale_id": f"s{minute}"}, minute)
        merch.emit("pos.drop_unlocked", {"drop_id": "d-1234567", "ticket_ref": "a" * 32, "unlock_id": f"u-000000{minute}",
                                         "ticket_type": "Member"}, minute)  # and one member ticket unlocked it twice
    report = build_report(market, site="market")
    assert [(d["drop"], d["sold"], d["minutes_to_sell_out"], d["status"]) for d in rows(report, "drops")] == [
        ("Posters", 2, 1.0, "OVERSOLD BY 1; MEMBER TICKET USED TWICE ×1")]
    figures = {r["figure"]: r["value"] for r in rows(report, "numbers")}
    assert figures["admitted"] == 3 and figures["tickets_sold"] == 10 and figures["attendance_percent"] == 30.0
    assert figures["minutes_to_first_sale"] == 3.0  # doors open at 19:02 (A), first sale after it at 19:05
    assert figures["sales_per_100"] == 133.3  # four sales (a refund does not undo a purchase) for three people
    slots = rows(report, "slots")
    # Poetry 19:01-19:20: A and B came in during it; merch1-1 (19:01), merch1-2, merch1-3 sold during it
    assert [(s["slot"], s["people_in"], s["sales"]) for s in slots] == [("Poetry", 2, 3)]
    assert "The evening's numbers" in render(report, "text")


def test_rsvps_are_counted_from_the_lists_registration_status_at_hq_as_on_the_kit():
    from sync.hq.refdocs import count_rsvps

    assert count_rsvps(b"Code;Name;Registration Status\nA;Ann;Registered\nB;Bo;Cancelled\nC;Cy;registered\n") == 2
    assert count_rsvps(b"code,name\nA,Ann\n") is None


def _report_rows(engine) -> dict:
    report = build_report(engine, site="market")
    return {s.key: s.rows for s in report.sections if s.key != "integrity"}


def test_a_store_from_before_the_facts_reports_the_same_once_it_is_opened(market):
    """A store whose facts are missing (made before them, or filled around ingest with COPY) is filled once."""
    from sync.hq import facts, schema

    before = _report_rows(market)
    with market.begin() as conn:
        for table in facts.TABLES.values():
            conn.execute(table.delete())
        conn.execute(schema.meta.delete())
    emptied = _report_rows(market)
    assert emptied["sales_by_product"] == [] and emptied["double_admissions"] == []
    store.create_schema(market)  # what HQ, the hub's mirror and the CLI do when they open a store
    assert _report_rows(market) == before
    with market.connect() as conn:  # and only once: the marker says so
        assert conn.execute(schema.meta.select()).all() == [("facts", facts.FACTS_VERSION)]


def test_an_undo_that_arrives_before_its_scan_still_undoes_it(hq_engine):
    """A hole filled later: HQ stores the undo (seq 2) before the scan it names (seq 1)."""
    kit = Kit(hq_engine, "door9", "market")
    scan_id, undo_id = str(uuid.uuid4()), str(uuid.uuid4())
    at = T0.isoformat()
    scan = {"id": scan_id, "kit": "door9", "seq": 1, "type": "checkin.scanned", "hlc": 1 << 16, "wall_time": at,
            "clock_synced": True, "payload": {"ticket_key": "Z", "verdict": "admit", "admitted": True, "door": "n"}}
    undo = {"id": undo_id, "kit": "door9", "seq": 2, "type": "checkin.undone", "hlc": 2 << 16, "wall_time": at,
            "clock_synced": True, "payload": {"scan_event_id": scan_id, "ticket_key": "Z", "reason": "mistake"}}
    prev = GENESIS
    for rec in (scan, undo):
        rec["hash"] = prev = _chain_hash(prev, rec["seq"], rec["id"], "door9", rec["type"],
                                         canonical_json(rec["payload"]), rec["hlc"], at, 1)
    assert store.ingest(hq_engine, kit.kit, [undo])[0].status == "stored"
    assert store.ingest(hq_engine, kit.kit, [scan])[0].status == "stored"
    figures = dict(build_report(hq_engine, site="market").section("attendance").rows)
    assert figures["people admitted"] == 0
