"""The evening's numbers (kit/metrics.py), checked against figures worked out by hand from the events."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from kit.metrics import MetricEvent, evening_numbers

TZ = ZoneInfo("UTC")
T = 1_800_000_000.0  # 2027-01-15T08:00:00Z, the doors open


def scan(at, ticket, admitted=True, verdict="admit", rehearsal=False, kit="door1", id_=""):
    return MetricEvent(kit, "checkin.scanned", {"ticket_key": ticket, "admitted": admitted, "verdict": verdict,
                                                "rehearsal": rehearsal, "at": at}, at, id_ or f"{kit}-{ticket}-{at}")


def sale(at, sid, kind="sale", original=None):
    return MetricEvent("merch1", "pos.sale" if kind == "sale" else "pos.refund",
                       {"id": sid, "kind": kind, "original_id": original, "total_cents": 2500}, at)


def slot(at, index, name, which):
    return MetricEvent("stage1", f"lead.slot_{which}", {"runsheet": "d" * 64, "slot": index, "name": name}, at)


EVENING = [
    scan(T, "A"), scan(T + 60, "B"), scan(T + 120, "C", kit="door2"), scan(T + 180, "R", rehearsal=True),
    scan(T + 240, "D", id_="undone-scan"), MetricEvent("door1", "checkin.undone", {"scan_event_id": "undone-scan"}, T + 250),
    scan(T + 1000, "E"), scan(T + 1100, "A", admitted=False, verdict="exit"),
    scan(T + 1200, "A", verdict="admit_reentry"),  # the same person again: still four people
    slot(T + 300, 0, "Poetry", "started"), slot(T + 900, 0, "Poetry", "ended"),
    slot(T + 900, 1, "Open mic", "started"), slot(T + 960, 1, "Open mic", "started"),  # two kits recorded it
    slot(T + 1500, 1, "Open mic", "ended"),
    sale(T + 420, "s1"), sale(T + 600, "s2"), sale(T + 1300, "s3"), sale(T + 1320, "s4"),
    sale(T + 1400, "v1", kind="void", original="s4"),
    MetricEvent("merch1", "pos.pickup_collected", {"code": "PU-1"}, T + 1350),
]


def test_the_numbers_of_a_scripted_evening_match_the_hand_count():
    n = evening_numbers(EVENING, TZ, tickets_sold=8)
    a, g, c = n["attendance"], n["go_live"], n["conversion"]
    # A, B, C, E (R was rehearsal, D undone; A's re-entry is the same person)
    assert a["admitted"] == 4 and a["tickets_sold"] == 8 and a["attendance_percent"] == 50.0 and a["exits"] == 1
    assert a["arrivals_per_15_min"] == [{"from": "2027-01-15T08:00:00+00:00", "admitted": 3},
                                        {"from": "2027-01-15T08:15:00+00:00", "admitted": 2}]
    assert g == {"doors_open_at": "2027-01-15T08:00:00+00:00", "first_sale_at": "2027-01-15T08:07:00+00:00",
                 "minutes_to_first_sale": 7.0}
    assert c == {"sales": 3, "sales_per_100": 75.0, "pickups_collected": 1, "pickups_collected_per_100": 25.0,
                 "drop_sales": 0, "drop_sales_per_100": 0.0, "signups": 0, "signups_per_100": 0.0}
    assert n["stall"]["stall_conversion"] == 0.75
    poetry, open_mic = n["slots"]
    # Poetry 08:05-08:15: 3 inside at its start, nobody came or left during it; sales s1, s2
    assert (poetry["name"], poetry["people_in"], poetry["buyers"], poetry["conversion_per_100"]) == ("Poetry", 3, 2, 66.7)
    # Open mic 08:15-08:25 (the earliest start any kit recorded): E in (4), A out (3), A back (4); sales s3 (s4 voided)
    assert (open_mic["start"], open_mic["people_in"], open_mic["buyers"]) == ("2027-01-15T08:15:00+00:00", 4, 1)
    assert all(isinstance(text, str) and text for text in n["help"].values())


def test_an_empty_evening_has_no_rates_rather_than_zero_divisions():
    n = evening_numbers([], TZ)
    assert n["attendance"]["attendance_percent"] is None and n["conversion"]["sales_per_100"] is None
    assert n["go_live"]["minutes_to_first_sale"] is None and n["slots"] == []


def test_hostile_payloads_from_another_kit_are_counted_as_nothing_not_a_crash():
    junk = [MetricEvent("k", "checkin.undone", {"scan_event_id": ["x"]}, T),
            MetricEvent("k", "pos.refund", {"kind": "void", "original_id": {"a": 1}}, T),
            MetricEvent("k", "pos.sale", {"id": [1], "kind": ["sale"]}, T),
            MetricEvent("k", "checkin.scanned", {"ticket_key": None, "verdict": 5, "admitted": "yes"}, T),
            MetricEvent("k", "lead.slot_started", {"runsheet": [1], "slot": {"x": 1}, "name": 7}, T)]
    n = evening_numbers(EVENING + junk, TZ)
    assert n["conversion"]["sales"] == 3 and len(n["slots"]) == 2  # the junk is not counted, nothing crashes


def test_drops_sell_through_time_to_sell_out_and_an_oversell():
    drop = [MetricEvent("merch1", "pos.drop_started", {"drop_id": "d-1234567", "name": "Posters", "sku": "POSTER",
                                                        "quantity": 2, "starts_at": T + 600}, T + 600),
            MetricEvent("merch1", "pos.drop_sold", {"drop_id": "d-1234567", "qty": 1, "sale_id": "s1"}, T + 660),
            MetricEvent("merch2", "pos.drop_sold", {"drop_id": "d-1234567", "qty": 1, "sale_id": "x1"}, T + 720),
            MetricEvent("merch1", "pos.drop_sold", {"drop_id": "d-1234567", "qty": 1, "sale_id": "s2"}, T + 730)]
    # The same member ticket unlocked on both kits while they could not see each other, one other ticket once.
    drop += [MetricEvent(kit, "pos.drop_unlocked", {"drop_id": "d-1234567", "ticket_ref": ref}, T + 650)
             for kit, ref in (("merch1", "a" * 32), ("merch2", "a" * 32), ("merch1", "b" * 32))]
    n = evening_numbers(EVENING + drop, TZ)
    assert n["drops"] == [{"drop_id": "d-1234567", "name": "Posters", "sku": "POSTER", "quantity": 2, "sold": 3, "sell_through_percent": 100.0,
                           "minutes_to_sell_out": 2.0, "oversold": 1, "start": "2027-01-15T08:10:00+00:00",
                           "member_unlocks": 3, "member_tickets_reused": 1}]
    assert n["conversion"]["drop_sales"] == 3 and n["conversion"]["drop_sales_per_100"] == 75.0


def test_a_slots_own_drop_shows_its_sell_through_in_the_slot():
    from kit.topics import slot_drop_id

    drop_id = slot_drop_id("d" * 64, 1)  # Open mic opened it
    drop = [MetricEvent("merch1", "pos.drop_started", {"drop_id": drop_id, "name": "Open mic drop", "sku": "POSTER",
                                                        "quantity": 4, "starts_at": T + 900}, T + 900),
            MetricEvent("merch1", "pos.drop_sold", {"drop_id": drop_id, "qty": 4, "sale_id": "s9"}, T + 1080)]
    poetry, open_mic = evening_numbers(EVENING + drop, TZ)["slots"]
    assert poetry["drop_sell_through_percent"] is None
    assert (open_mic["drop_sell_through_percent"], open_mic["drop_minutes_to_sell_out"]) == (100.0, 3.0)


def test_the_leads_doors_open_starts_the_go_live_clock():
    said = MetricEvent("stage1", "lead.doors_open", {"at": T - 300}, T - 300)  # five minutes before the first scan
    g = evening_numbers(EVENING + [said], TZ)["go_live"]
    assert g["doors_open_at"] == "2027-01-15T07:55:00+00:00" and g["minutes_to_first_sale"] == 12.0
