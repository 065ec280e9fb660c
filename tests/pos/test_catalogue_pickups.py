"""Catalogue and pickup lists as reference documents: CSV and JSON, per-row errors, lead edits, pickups once."""

from __future__ import annotations

import json

import pytest

from kit.documents import DocumentError
from pos.catalogue import CatalogueError, catalogue_view, edit_product, find_product
from pos.pickups import PickupError, collect, lookup

CSV = b"""SKU,Name,Variant,Price,Tax rate,Stock,Stock_test1,Barcode,Active
CAP-R,Cap,Red,18.00,19,50,5,111,yes
CAP-B,Cap,Blue,18.5,19,,,,
BAD1,,x,1.00,,,,,
BAD2,Mug,,12.345,,,,,
BAD3,Mug,,-3.00,,,,,
BAD4,Mug,,3.00,150,,,,
CAP-R,Cap,Again,1.00,,,,,
BAD5,Mug,,3.00,,lots,,,
BAD6,Mug,,3.00,,,,111,
BAD7,Mug,,3.00,,,,,maybe
MUG,Mug,,9.00,7,,,,no
"""


def test_csv_import_reports_each_bad_row_and_keeps_the_good_ones(pos_kit):
    _, report = pos_kit.import_doc("pos.catalogue", CSV, "catalogue.csv")
    skipped = dict(report.skipped)
    assert report.imported == 3
    assert "name is empty" in skipped[4]
    assert "12.345" in skipped[5]
    assert "negative" in skipped[6] or "not an amount" in skipped[6]
    assert "between 0 and 100" in skipped[7]
    assert "already on row 2" in skipped[8]
    assert "whole number" in skipped[9]
    assert "barcode 111 already" in skipped[10]
    assert "yes/no" in skipped[11]
    cap = find_product(pos_kit.db.conn, "CAP-R")
    assert cap.price_cents == 1800 and cap.stock == 5  # the per-kit stock column wins
    assert find_product(pos_kit.db.conn, "CAP-B").price_cents == 1850
    assert not find_product(pos_kit.db.conn, "MUG").active
    with pytest.raises(CatalogueError):
        find_product(pos_kit.db.conn, "TS-L")  # the new version replaced the demo catalogue
    assert "no longer in the catalogue" in report.notes[0]


def test_json_catalogue_with_nested_variants(pos_kit):
    doc = {"products": [{"name": "Beanie", "price": 15.5, "tax_rate": "19",
                         "variants": [{"sku": "BN-1", "variant": "Black", "stock": 3}, {"sku": "BN-2", "variant": "Grey"}]},
                        {"sku": "PIN", "name": "Pin", "price": "3.00"}, "junk"]}
    _, report = pos_kit.import_doc("pos.catalogue", json.dumps(doc).encode(), "cat.json")
    assert report.imported == 3 and len(report.skipped) == 1
    view = catalogue_view(pos_kit.db.conn)["products"]
    beanie = next(g for g in view if g["name"] == "Beanie")
    assert [v["variant"] for v in beanie["variants"]] == ["Black", "Grey"]
    assert beanie["variants"][0]["price_cents"] == 1550 and beanie["variants"][0]["remaining"] == 3


@pytest.mark.parametrize("data,name,message", [
    (b"product,cost\nA,1.00\n", "c.csv", "at least sku, name and price"),
    (b"{not json", "c.json", "not valid JSON"),
    (b"sku,name,price\nA,,x\n", "c.csv", "no valid products"),
])
def test_unusable_catalogue_is_refused_and_the_old_one_stays(pos_kit, data, name, message):
    with pytest.raises(DocumentError, match=message):
        pos_kit.import_doc("pos.catalogue", data, name)
    assert find_product(pos_kit.db.conn, "TS-L").price_cents == 2500


def test_lead_edits_a_product(pos_kit):
    with pos_kit.db.transaction() as conn:
        p = edit_product(conn, "TS-L", {"price": "22.00", "stock": 3}, pos_kit.config)
        assert p.price_cents == 2200 and p.stock == 3
        with pytest.raises(CatalogueError, match="not an amount"):
            edit_product(conn, "TS-L", {"price": "cheap"}, pos_kit.config)
        with pytest.raises(CatalogueError, match="cannot edit"):
            edit_product(conn, "TS-L", {"sku": "X"}, pos_kit.config)
        new = edit_product(conn, "BADGE", {"name": "Badge", "price": "1.50"}, pos_kit.config)
        assert new.tax_bp == 1900  # default rate of the kit
    assert pos_kit.sell("TS-L").sale["total_cents"] == 2200


def test_pickup_is_collected_once_and_says_what_to_hand_over(pos_kit):
    order = lookup(pos_kit.db.conn, "PU-DEMO2")
    assert order["summary"] == "2× T-shirt L, 3× Sticker"
    got = collect(pos_kit.db, pos_kit.ledger, " PU-DEMO2 ")
    assert [(i["qty"], i["description"]) for i in got["items"]] == [(2, "T-shirt L"), (3, "Sticker")]
    with pytest.raises(PickupError, match="already collected"):
        collect(pos_kit.db, pos_kit.ledger, "PU-DEMO2")
    with pytest.raises(PickupError, match="unknown pickup code"):
        collect(pos_kit.db, pos_kit.ledger, "PU-NOPE")
    assert pos_kit.db.scalar("SELECT COUNT(*) FROM events WHERE type='pos.pickup_collected'") == 1


def test_pickup_list_with_items_column_and_bad_rows(pos_kit):
    data = b"code,name,items\nPU-A1,Kim,1x Hoodie M; 2x Sticker\nx,Bad,1x Cap\nPU-B2,Lee,\n"
    _, report = pos_kit.import_doc("pos.pickups", data, "pickups.csv")
    assert report.imported == 1 and [r for r, _ in report.skipped] == [3, 4]
    assert lookup(pos_kit.db.conn, "PU-A1")["summary"] == "1× Hoodie M, 2× Sticker"
