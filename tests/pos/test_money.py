"""Money arithmetic: parsing, tax and discount rounding, shares that always add up (property-based)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pos.money import (
    MAX_CENTS,
    MoneyError,
    format_cents,
    parse_cents,
    parse_rate,
    percent_of,
    split_proportionally,
    tax_included,
    tax_on_top,
)
from pos.pricing import CartItem, CheckoutError, Discount, Tender, price_cart, settle

cents = st.integers(min_value=0, max_value=MAX_CENTS)
rates = st.sampled_from([0, 500, 700, 770, 1000, 1900, 2000, 2500])


@pytest.mark.parametrize("text,expected", [("25.00", 2500), ("25", 2500), ("0.5", 50), ("1,99", 199), (" 3.07 ", 307)])
def test_parse_cents_reads_decimals_exactly(text, expected):
    assert parse_cents(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "1.234", "1e3", "-5.00", "NaN", "100000000.00", 12.5, 25, None, True])
def test_parse_cents_refuses_what_is_not_money(text):
    with pytest.raises(MoneyError):
        parse_cents(text)


def test_rates_are_basis_points():
    assert parse_rate("19") == 1900
    assert parse_rate("7.7%") == 770
    for bad in ("-1", "101", "7.777", "x"):
        with pytest.raises(MoneyError):
            parse_rate(bad)


@given(cents, rates)
def test_tax_inside_a_gross_amount_is_the_rounded_exact_share(gross, bp):
    tax = tax_included(gross, bp)
    net = gross - tax
    # net × (1 + rate) is within half a cent (times the rate) of the gross: the rounding is to the nearest cent.
    assert abs(net * (10_000 + bp) - gross * 10_000) <= 5_000 + bp // 2
    assert 0 <= tax <= gross


@given(cents, rates)
def test_tax_on_top_and_percent_round_half_up(net, bp):
    exact_times_10000 = net * bp
    tax = tax_on_top(net, bp)
    assert abs(tax * 10_000 - exact_times_10000) <= 5_000
    assert percent_of(net, bp) == tax
    if exact_times_10000 % 10_000 == 5_000:
        assert tax * 10_000 > exact_times_10000  # .5 rounds up


@given(st.integers(0, 10**9), st.lists(st.integers(0, 10**7), min_size=1, max_size=30))
def test_split_adds_up_and_follows_weights(total, weights):
    if sum(weights) == 0:
        if total:
            with pytest.raises(ValueError):
                split_proportionally(total, weights)
        return
    parts = split_proportionally(total, weights)
    assert sum(parts) == total
    s = sum(weights)
    for part, w in zip(parts, weights, strict=True):
        assert abs(part * s - total * w) < s  # never more than one cent from the exact share


items_st = st.lists(
    st.builds(lambda unit, qty, bp, pct: CartItem("S", "N", "", qty, unit, bp,
                                                  Discount("percent", pct, "r") if pct is not None else None),
              st.integers(0, 50_000), st.integers(1, 20), rates, st.one_of(st.none(), st.integers(0, 10_000))),
    min_size=1, max_size=8)


@settings(max_examples=300)
@given(items_st, st.one_of(st.none(), st.integers(0, 10_000)), st.booleans())
def test_priced_cart_is_consistent(items, cart_pct, inclusive):
    cart = price_cart(items, Discount("percent", cart_pct, "r") if cart_pct is not None else None, inclusive)
    assert cart.subtotal_cents == sum(i.unit_cents * i.qty for i in items)
    assert sum(ln.total_cents for ln in cart.lines) == cart.subtotal_cents - cart.discount_cents
    assert all(ln.total_cents >= 0 and ln.tax_cents >= 0 for ln in cart.lines)
    assert sum(ln.tax_cents for ln in cart.lines) == cart.tax_cents == sum(t["tax_cents"] for t in cart.taxes)
    expected_total = sum(ln.total_cents for ln in cart.lines) + (0 if inclusive else cart.tax_cents)
    assert cart.total_cents == expected_total
    for t in cart.taxes:
        assert t["net_cents"] + t["tax_cents"] == t["gross_cents"]
    assert cart.total_cents <= cart.subtotal_cents + (0 if inclusive else cart.tax_cents)


def test_known_receipt_arithmetic():
    items = [CartItem("TS-L", "T-shirt", "L", 1, 2500, 1900), CartItem("ST", "Sticker", "", 2, 200, 1900)]
    cart = price_cart(items, Discount("percent", 1000, "crew"), True)
    assert cart.total_cents == 2610  # 29.00 − 10 %
    assert cart.tax_cents == 417  # 26.10 × 19/119 = 4.167 → 4.17
    assert format_cents(cart.total_cents) == "26.10"


@given(st.integers(0, 10**7), st.lists(st.tuples(st.sampled_from(["cash", "card", "other"]), st.integers(1, 10**7)),
                                       min_size=1, max_size=4))
def test_settle_gives_change_only_from_cash(total, tenders):
    ts = [Tender(m, a, reference="REF") for m, a in tenders]
    try:
        s = settle(total, ts)
    except CheckoutError:
        non_cash = sum(a for m, a in tenders if m != "cash")
        assert non_cash > total or sum(a for _, a in tenders) < total
        return
    assert sum(p["amount_cents"] for p in s.payments) == total
    assert s.change_cents == sum(a for _, a in tenders) - total
    assert all(p["amount_cents"] >= 0 for p in s.payments)
    cash_given = sum(a for m, a in tenders if m == "cash")
    assert s.change_cents <= cash_given


def test_settle_refuses_bad_tenders():
    with pytest.raises(CheckoutError, match="below the total"):
        settle(2500, [Tender("cash", 2000)])
    with pytest.raises(CheckoutError, match="only cash can give change"):
        settle(2500, [Tender("card", 3000, "R1")])
    with pytest.raises(CheckoutError, match="reference"):
        settle(2500, [Tender("card", 2500)])
    with pytest.raises(CheckoutError, match="no payment"):
        settle(2500, [])
    with pytest.raises(CheckoutError, match="more than the"):
        price_cart([CartItem("A", "A", "", 1, 100, 0, Discount("amount", 101, "r"))], None, True)


@given(st.integers(0, 10**7), st.integers(1, 50), st.data())
def test_refunding_units_in_any_steps_gives_back_exactly_the_line(total, qty, data):
    from pos.refunds import _cumulative

    steps, left = [], qty
    while left:
        k = data.draw(st.integers(1, left))
        steps.append(k)
        left -= k
    done, back = 0, []
    for k in steps:
        back.append(_cumulative(total, qty, done + k) - _cumulative(total, qty, done))
        done += k
    assert sum(back) == total
    assert all(b >= 0 for b in back)
    # no unit comes back with more than one cent more than its fair share
    assert all(b * qty <= total * k + qty for b, k in zip(back, steps, strict=True))
