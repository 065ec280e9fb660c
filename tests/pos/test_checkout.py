"""Checkout: sales commit with gapless receipt numbers and their ledger event; bad input makes no sale."""

from __future__ import annotations

import json

import pytest

from kit.event_codec import unpack
from kit.ledger import verify
from pos.checkout import IdempotencyConflict, make_sale, parse_sale_request, sale_view
from pos.pricing import CheckoutError


def _count(db, sql="SELECT COUNT(*) FROM pos_sales"):
    return db.scalar(sql)


def test_cash_sale_records_receipt_change_stock_and_event(pos_kit):
    r = pos_kit.sell("TS-L", "STICKER:2", pay=[{"method": "cash", "amount": "50.00"}])
    s = r.sale
    assert s["receipt"] == "test1-1"
    assert s["total_cents"] == 2900 and s["change_cents"] == 2100
    assert s["tax_cents"] == 463  # 29.00 × 19/119
    db = pos_kit.db
    assert db.scalar("SELECT sold FROM pos_stock_sold WHERE sku='TS-L'") == 1
    assert db.scalar("SELECT sold FROM pos_stock_sold WHERE sku='STICKER'") == 2
    ev = db.query_one("SELECT type, payload FROM events WHERE type='pos.sale'")
    assert json.loads(unpack(ev["payload"]))["receipt"] == "test1-1"
    job = db.query_one("SELECT status, receipt FROM pos_print_jobs")
    assert (job["status"], job["receipt"]) == ("queued", "test1-1")
    view = sale_view(db, pos_kit.config, s["id"])
    assert view["print"]["status"] == "queued"
    texts = [ln.get("text", "") for ln in view["receipt_lines"]]
    assert "Night Market" in texts and "Receipt test1-1" in texts
    assert any(t.startswith("CHANGE") and t.endswith("21.00") for t in texts)


def test_receipt_numbers_are_gapless_across_sales_and_refunds(pos_kit):
    a = pos_kit.sell("TS-M").sale
    pos_kit.sell("TS-S")
    from pos.refunds import refund

    r = refund(pos_kit.db, pos_kit.ledger, pos_kit.config, a["receipt"], reason="wrong size")
    c = pos_kit.sell("TOTE").sale
    assert [a["n"], r["n"], c["n"]] == [1, 3, 4]
    ns = [row[0] for row in pos_kit.db.query("SELECT n FROM pos_sales ORDER BY n")]
    assert ns == [1, 2, 3, 4]


def test_split_payment_card_and_cash(pos_kit):
    s = pos_kit.sell("HOODIE-M", pay=[{"method": "card", "reference": "T-88", "last4": "4242", "amount": "30.00"},
                                      {"method": "cash", "amount": "20.00"}]).sale
    assert s["change_cents"] == 500
    assert [(p["method"], p["amount_cents"]) for p in s["payments"]] == [("card", 3000), ("cash", 1500)]


def test_line_and_cart_discounts_need_reasons_and_add_up(pos_kit):
    body = {"items": [{"sku": "TS-L", "qty": 2, "discount": {"percent": "10", "reason": "crew"}},
                      {"sku": "POSTER", "qty": 1}],
            "discount": {"amount": "1.00", "reason": "bundle"},
            "payments": [{"method": "cash", "amount": "100.00"}]}
    s = make_sale(pos_kit.db, pos_kit.ledger, pos_kit.config, parse_sale_request(body)).sale
    assert s["subtotal_cents"] == 6250
    assert s["discount_cents"] == 500 + 100
    assert s["total_cents"] == 5650
    assert sum(ln["total_cents"] for ln in s["lines"]) == 5650
    assert {t["tax_bp"] for t in s["taxes"]} == {700, 1900}
    with pytest.raises(CheckoutError, match="reason"):
        parse_sale_request({**body, "discount": {"percent": "5"}})


def test_double_tapped_pay_makes_one_sale(pos_kit):
    first = pos_kit.sell("TS-L", key="tap-0001-abcdef")
    again = pos_kit.sell("TS-L", key="tap-0001-abcdef")
    assert again.replayed and again.receipt == first.receipt
    assert _count(pos_kit.db) == 1
    assert pos_kit.db.scalar("SELECT COUNT(*) FROM pos_print_jobs") == 1


def test_same_key_with_a_different_cart_is_refused(pos_kit):
    pos_kit.sell("TS-L", key="tap-0002-abcdef")
    with pytest.raises(IdempotencyConflict, match="different cart"):
        pos_kit.sell("TS-XL", key="tap-0002-abcdef")
    with pytest.raises(IdempotencyConflict):
        pos_kit.sell("TS-L", key="tap-0002-abcdef", pay=[{"method": "cash", "amount": "30.00"}])
    assert _count(pos_kit.db) == 1


@pytest.mark.parametrize("body,message", [
    ({"items": [{"sku": "NOPE", "qty": 1}]}, "unknown SKU"),
    ({"items": [{"sku": "TS-L", "qty": 0}]}, "at least 1"),
    ({"items": [{"sku": "TS-L", "qty": -3}]}, "at least 1"),
    ({"items": [{"sku": "TS-L", "qty": 1.5}]}, "whole number"),
    ({"items": [{"sku": "TS-L", "qty": "2"}]}, "whole number"),
    ({"items": [{"sku": "TS-L", "qty": 10**12}]}, "more than"),
    ({"items": [{"sku": "HOODIE-M", "qty": 10001}]}, "more than 10000"),
    ({"items": [{"sku": "TS-L"}], "payments": [{"method": "cash", "amount": "99999999999999999999.00"}]}, "not an amount|limit"),
    ({"items": [{"sku": "TS-L"}], "payments": [{"method": "cash", "amount_cents": 10**30}]}, "limit"),
    ({"items": [{"sku": "TS-L"}], "payments": [{"method": "cash", "amount": "20.00"}]}, "below the total"),
    ({"items": [{"sku": "TS-L"}], "payments": [{"method": "cash", "amount": 25.0}]}, "not an amount"),
    ({"items": [{"sku": "TS-L"}], "payments": [{"method": "bitcoin", "amount": "25.00"}]}, "cash, card or other"),
    ({"items": [{"sku": "TS-L"}], "payments": []}, "no payment"),
    ({"items": []}, "empty"),
    ({"items": "TS-L"}, "empty"),
    ([1, 2], "JSON object"),
    ({"items": [{"sku": "TS-L"}], "discount": {"percent": "150", "reason": "x"}}, "between 0 and 100"),
    ({"items": [{"sku": "TS-L"}], "idempotency_key": "x"}, "idempotency_key"),
])
def test_bad_input_is_a_clear_error_and_no_sale(pos_kit, body, message):
    body = {"payments": [{"method": "cash", "amount": "100.00"}], **body} if isinstance(body, dict) else body
    with pytest.raises(CheckoutError, match=message):
        make_sale(pos_kit.db, pos_kit.ledger, pos_kit.config, parse_sale_request(body))
    assert _count(pos_kit.db) == 0
    assert pos_kit.db.scalar("SELECT COUNT(*) FROM events WHERE type='pos.sale'") == 0
    assert pos_kit.db.scalar("SELECT COUNT(*) FROM pos_print_jobs") == 0
    assert verify(pos_kit.db)[1] == []


def test_inactive_products_are_not_sold(pos_kit):
    from pos.catalogue import edit_product

    with pos_kit.db.transaction() as conn:
        edit_product(conn, "TOTE", {"active": False}, pos_kit.config)
    with pytest.raises(CheckoutError, match="not on sale"):
        pos_kit.sell("TOTE")


def test_selling_past_zero_stock_is_allowed_and_flagged(pos_kit):
    s = pos_kit.sell("HOODIE-M:9").sale
    assert s["oversold"] == []
    s = pos_kit.sell("HOODIE-M:2").sale
    assert s["oversold"] == ["HOODIE-M"]
    from pos.catalogue import catalogue_view

    hoodie = next(g for g in catalogue_view(pos_kit.db.conn)["products"] if g["name"] == "Hoodie")
    assert next(v for v in hoodie["variants"] if v["sku"] == "HOODIE-M")["remaining"] == -1


def test_scanned_barcode_sells_like_a_sku(pos_kit):
    s = pos_kit.sell("4006381333924").sale
    assert s["lines"][0]["sku"] == "TS-L"


def test_tax_exclusive_prices_add_tax(pos_kit):
    pos_kit.config = pos_kit.config.with_values(pos__prices_include_tax=False)
    s = pos_kit.sell("TS-L").sale
    assert s["total_cents"] == 2975 and s["tax_cents"] == 475


def test_a_cart_that_overflows_the_limit_is_refused(pos_kit):
    from pos.catalogue import edit_product

    with pos_kit.db.transaction() as conn:
        edit_product(conn, "HOODIE-M", {"price": "9999.00"}, pos_kit.config)
    with pytest.raises(CheckoutError, match="more than 10000000.00"):
        pos_kit.sell("HOODIE-M:2000", pay=[{"method": "cash", "amount": "9999999.00"}])
    assert _count(pos_kit.db) == 0
