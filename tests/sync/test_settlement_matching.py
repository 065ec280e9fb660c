"""Card payments against settlement lines by amount and time: the indexed matcher (sync/hq/settlements.py)
pairs exactly as the plain nearest-first scan in time order does, on random nights with ties, lines
without a time, amounts that repeat and windows of every size."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from sync.hq.settlements import CardPayment, _row, match_card_payments

BASE = datetime(2026, 11, 21, 19, tzinfo=UTC)


def nearest_first_scan(payments, settlements, window_minutes):
    """The definition: each payment, in time order, takes the free line of its amount nearest in time
    (within the window), the earlier line on a tie; what is left is unmatched on either side."""
    rows, taken, window = [], set(), timedelta(minutes=window_minutes)
    for p in sorted(payments, key=lambda p: p.at):
        best, best_gap = None, None
        for i, s in enumerate(settlements):
            if i in taken or s["amount_cents"] != p.amount_cents or s["paid_at"] is None:
                continue
            gap = abs(s["paid_at"] - p.at)
            if gap <= window and (best_gap is None or gap < best_gap):
                best, best_gap = i, gap
        if best is None:
            rows.append(_row("UNMATCHED PAYMENT", p, None))
        else:
            taken.add(best)
            rows.append(_row("matched by amount and time", p, settlements[best]))
    rows += [_row("UNMATCHED SETTLEMENT", None, s) for i, s in enumerate(settlements) if i not in taken]
    return rows


def night(seed: int):
    r = random.Random(seed)
    amounts = [500, 1000, 2500]
    payments = [CardPayment("door1", f"R{i}", r.choice(amounts), "",
                            BASE + timedelta(seconds=r.randint(0, 3600) // r.choice([1, 60]) * r.choice([1, 60])))
                for i in range(r.randint(0, 40))]
    lines = [{"batch": "sumup.csv", "line": j, "reference": "", "amount_cents": r.choice(amounts), "currency": "EUR",
              "terminal": "", "paid_at": None if r.random() < 0.1 else BASE + timedelta(seconds=r.randint(0, 3600) // 60 * 60)}
             for j in range(r.randint(0, 40))]
    lines.sort(key=lambda s: (s["paid_at"] is None, s["paid_at"] or BASE))  # as load_settlements orders them
    return payments, lines, r.choice([1, 10, 30])


def test_the_indexed_matcher_pairs_as_the_nearest_first_scan_does():
    matched = 0
    for seed in range(300):
        payments, lines, window = night(seed)
        got = match_card_payments(payments, lines, window)
        assert got == nearest_first_scan(payments, lines, window), f"night {seed}"
        matched += sum(1 for row in got if row["status"].startswith("matched"))
    assert matched > 1000  # the nights really paired payments (not only unmatched rows)


def test_a_reference_match_wins_over_amount_and_time():
    pay = CardPayment("door1", "R1", 2500, "TX-9", BASE)
    by_time = {"batch": "b.csv", "line": 2, "reference": "", "amount_cents": 2500, "currency": "EUR", "terminal": "",
               "paid_at": BASE}
    by_ref = {**by_time, "line": 3, "reference": "tx-9", "paid_at": BASE + timedelta(hours=2)}
    rows = match_card_payments([pay], [by_time, by_ref], 10)
    assert [(r["status"], r["settlement_file"]) for r in rows] == [
        ("matched by reference", "b.csv:3"), ("UNMATCHED SETTLEMENT", "b.csv:2")]
