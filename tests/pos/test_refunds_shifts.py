"""Refunds and voids as new documents, shifts with cash movements, X and Z reports, ledger rebuild."""

from __future__ import annotations

import json

import pytest

from kit.features import get_feature
from kit.ledger import rebuild, verify
from pos.refunds import RefundError, refund
from pos.shifts import ShiftError, cash_move, close_shift, open_shift, x_report


def _refund(pos_kit, receipt, **kw):
    kw.setdefault("reason", "wrong size")
    return refund(pos_kit.db, pos_kit.ledger, pos_kit.config, receipt, **kw)


def test_partial_refunds_add_up_to_the_sale_and_never_beyond(pos_kit):
    sale = pos_kit.sell("STICKER:3", "TS-L", discount={"percent": "10", "reason": "crew"}).sale
    total = sale["total_cents"]
    parts = [_refund(pos_kit, sale["receipt"], items=[{"line": 1, "qty": 1}]) for _ in range(3)]
    parts.append(_refund(pos_kit, sale["receipt"], items=[{"sku": "TS-L", "qty": 1}]))
    assert sum(p["total_cents"] for p in parts) == total
    assert sum(p["tax_cents"] for p in parts) == sale["tax_cents"]
    assert all(p["original_id"] == sale["id"] for p in parts)
    with pytest.raises(RefundError, match="already been refunded in full"):
        _refund(pos_kit, sale["receipt"], items=[{"line": 1, "qty": 1}])
    # the original sale is untouched
    from pos.receipts import sale_document

    stored = sale_document(pos_kit.db.conn, sale["id"])
    assert stored == sale
    assert pos_kit.db.scalar("SELECT sold FROM pos_stock_sold WHERE sku = 'STICKER'") == 0


@pytest.mark.parametrize("kwargs,message", [
    ({"items": [{"line": 2, "qty": 3}]}, "2 of 2 left"),
    ({"items": [{"line": 9, "qty": 1}]}, "no such line"),
    ({"items": [{"line": 1, "qty": 0}]}, "at least 1"),
    ({"amount_cents": 5000}, "more than the 29.00 left"),
    ({"amount_cents": -5}, "negative"),
    ({"reason": " "}, "needs a reason"),
])
def test_refund_bad_input(pos_kit, kwargs, message):
    sale = pos_kit.sell("TS-L", "STICKER:2").sale
    before = pos_kit.db.scalar("SELECT COUNT(*) FROM events")
    with pytest.raises(RefundError, match=message):
        _refund(pos_kit, sale["receipt"], **kwargs)
    assert pos_kit.db.scalar("SELECT COUNT(*) FROM events") == before


def test_refund_of_unknown_sale(pos_kit):
    with pytest.raises(RefundError, match="no sale"):
        _refund(pos_kit, "test1-99")


def test_goodwill_amount_refund_then_void_is_refused(pos_kit):
    sale = pos_kit.sell("HOODIE-M").sale
    r = _refund(pos_kit, sale["receipt"], amount_cents=500, method="cash")
    assert r["total_cents"] == 500 and r["lines"][0]["qty"] == 0
    assert pos_kit.db.scalar("SELECT sold FROM pos_stock_sold WHERE sku='HOODIE-M'") == 1  # goods stayed sold
    with pytest.raises(RefundError, match="already has refunds"):
        _refund(pos_kit, sale["receipt"], void=True)


def test_void_takes_back_everything(pos_kit):
    sale = pos_kit.sell("TS-L:2").sale
    v = _refund(pos_kit, sale["receipt"], void=True, reason="keyed twice")
    assert v["kind"] == "void" and v["total_cents"] == sale["total_cents"]
    assert pos_kit.db.scalar("SELECT sold FROM pos_stock_sold WHERE sku='TS-L'") == 0


def test_shift_z_report_expected_against_counted(pos_kit):
    cfg = pos_kit.config
    open_shift(pos_kit.db, pos_kit.ledger, 10000)
    with pytest.raises(ShiftError, match="already open"):
        open_shift(pos_kit.db, pos_kit.ledger, 0)
    pos_kit.sell("TS-L", pay=[{"method": "cash", "amount": "50.00"}])  # 25.00 cash kept
    s2 = pos_kit.sell("HOODIE-M", pay=[{"method": "card", "reference": "T1", "amount": "45.00"}]).sale
    pos_kit.sell("STICKER:2", pay=[{"method": "other", "reference": "voucher V7", "amount": "4.00"}])
    cash_move(pos_kit.db, pos_kit.ledger, 2000, "change from the bank")
    cash_move(pos_kit.db, pos_kit.ledger, -5000, "safe drop")
    with pytest.raises(ShiftError, match="should hold"):
        cash_move(pos_kit.db, pos_kit.ledger, -100000, "too much")
    _refund(pos_kit, s2["receipt"], reason="faulty zip", method="card")
    x = x_report(pos_kit.db, cfg)
    assert x["cash"]["expected_cents"] == 10000 + 2500 + 2000 - 5000
    with pytest.raises(ShiftError, match="not one of the denominations"):
        close_shift(pos_kit.db, pos_kit.ledger, cfg, denominations={300: 1})
    z = close_shift(pos_kit.db, pos_kit.ledger, cfg, denominations={5000: 1, 2000: 1, 200: 2})  # 74.00
    assert z["kind"] == "Z"
    assert z["counted_cents"] == 7400 and z["difference_cents"] == 7400 - 9500
    assert z["sales"]["count"] == 3 and z["refunds"]["count"] == 1
    methods = {m["method"]: m for m in z["by_method"]}
    assert methods["card"]["net_cents"] == 0 and methods["other"]["net_cents"] == 400
    assert z["net_total_cents"] == 2500 + 400
    stored = json.loads(pos_kit.db.scalar("SELECT z_report FROM pos_shifts WHERE number = 1"))
    assert stored["difference_cents"] == -2100
    job = pos_kit.db.query_one("SELECT title, document FROM pos_print_jobs WHERE job_key LIKE 'z:%'")
    texts = [ln.get("text", "") for ln in json.loads(job["document"])]
    assert "Z REPORT" in texts
    assert any(t.startswith("Difference") and t.endswith("-21.00") for t in texts)
    with pytest.raises(ShiftError, match="no shift is open"):
        close_shift(pos_kit.db, pos_kit.ledger, cfg, counted_cents=0)
    # the next sale opens shift 2 by itself
    pos_kit.sell("TOTE")
    assert pos_kit.db.scalar("SELECT auto_opened FROM pos_shifts WHERE number = 2") == 1


TABLES = ["pos_sales", "pos_sale_lines", "pos_payments", "pos_shifts", "pos_cash_moves", "pos_stock_sold",
          "pos_counters", "pos_pickups_collected"]


def _dump(db):
    return {t: [tuple(r) for r in db.query(f"SELECT * FROM {t} ORDER BY 1, 2")] for t in TABLES}


def test_ledger_rebuild_reproduces_the_same_tables(pos_kit):
    from pos.pickups import collect

    open_shift(pos_kit.db, pos_kit.ledger, 5000)
    a = pos_kit.sell("TS-L", "STICKER:2", key="rebuild-key-1").sale
    pos_kit.sell("HOODIE-L", pay=[{"method": "card", "reference": "X9", "amount": "45.00"}])
    _refund(pos_kit, a["receipt"], items=[{"line": 2, "qty": 1}])
    cash_move(pos_kit.db, pos_kit.ledger, 1000, "coins")
    collect(pos_kit.db, pos_kit.ledger, "PU-DEMO1")
    close_shift(pos_kit.db, pos_kit.ledger, pos_kit.config, counted_cents=8000)
    pos_kit.sell("POSTER")
    before = _dump(pos_kit.db)
    jobs_before = pos_kit.db.scalar("SELECT COUNT(*) FROM pos_print_jobs")
    replayed = rebuild(pos_kit.db, [get_feature("pos")])
    assert replayed["pos"] == pos_kit.db.scalar("SELECT COUNT(*) FROM events WHERE type LIKE 'pos.%'")
    assert _dump(pos_kit.db) == before
    assert pos_kit.db.scalar("SELECT COUNT(*) FROM pos_print_jobs") == jobs_before  # nothing reprinted
    assert verify(pos_kit.db)[1] == []
    # numbering carries on after a rebuild
    assert pos_kit.sell("TOTE").receipt == f"test1-{before['pos_counters'][0][1] + 1}"
