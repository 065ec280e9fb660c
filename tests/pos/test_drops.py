"""Live drops: the offer price for a quantity and a window, shared by the site's merch kits."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from kit.event_codec import unpack
from pos.drops import DropError, start_drop, status, stop_drop


def start(pos_kit, **overrides):
    args = {"name": "Poster drop", "sku": "POSTER", "price_cents": 800, "quantity": 3, "minutes": 15} | overrides
    with pos_kit.db.transaction() as conn:
        return start_drop(conn, pos_kit.ledger, **args)


def lines_of(result) -> list[tuple[str, int, int, str | None]]:
    return [(ln["sku"], ln["qty"], ln["unit_cents"], ln.get("drop_id")) for ln in result.sale["lines"]]


@pytest.mark.parametrize("overrides,words", [
    ({"quantity": 0}, "quantity must be a whole number from 1"),
    ({"price_cents": -100}, "must not be negative"),
    ({"sku": "NOPE"}, "unknown SKU 'NOPE'"),
    ({"minutes": 5, "starts_at": time.time() - 3600}, "that window is already over"),
    ({"name": "bad/name"}, "name the drop"),
])
def test_a_drop_that_would_surprise_the_table_is_refused(pos_kit, overrides, words):
    with pytest.raises(DropError, match=words):
        start(pos_kit, **overrides)
    assert status(pos_kit.db.conn, time.time()) == []


def test_one_drop_per_product_at_once(pos_kit):
    start(pos_kit)
    with pytest.raises(DropError, match="one drop per product at once"):
        start(pos_kit, name="Second")


def test_the_offer_price_for_the_drops_units_then_the_normal_price(pos_kit):
    drop = start(pos_kit)
    first = pos_kit.sell("POSTER:2")
    assert lines_of(first) == [("POSTER", 2, 800, drop["drop_id"])] and first.sale["total_cents"] == 1600
    split = pos_kit.sell("POSTER:3")  # one drop unit left: one at 8.00, two at the normal 12.50
    assert lines_of(split) == [("POSTER", 1, 800, drop["drop_id"]), ("POSTER", 2, 1250, None)]
    after = pos_kit.sell("POSTER")
    assert lines_of(after) == [("POSTER", 1, 1250, None)]  # sold out: back at its normal price
    view = status(pos_kit.db.conn, time.time())[0]
    assert (view["sold"], view["left"], view["phase"], view["oversold"]) == (3, 0, "sold_out", 0)
    sold = [json.loads(unpack(r[0])) for r in pos_kit.db.query("SELECT payload FROM events WHERE type='pos.drop_sold'")]
    assert [(s["qty"], s["receipt"]) for s in sold] == [(2, first.receipt), (1, split.receipt)]


def test_a_stopped_drop_ends_the_offer_at_once(pos_kit):
    start(pos_kit)
    with pos_kit.db.transaction() as conn:
        stop_drop(conn, pos_kit.ledger, "Poster drop")
    assert lines_of(pos_kit.sell("POSTER")) == [("POSTER", 1, 1250, None)]
    with pos_kit.db.transaction() as conn, pytest.raises(DropError, match="already stopped"):
        stop_drop(conn, pos_kit.ledger, "Poster drop")


def test_the_command_line_starts_shows_and_stops_a_drop(pos_kit, kit_env):
    from kit.cli import cli

    run = CliRunner()
    env = {**kit_env["env"], "FIELDKIT_KIT_EVENT": "Night Market", "FIELDKIT_POS_DEFAULT_TAX_RATE": "19"}
    r = run.invoke(cli, ["pos", "drop", "start", "Poster drop", "--sku", "POSTER", "--price", "8.00", "--quantity", "30",
                         "--minutes", "15"], env=env)
    assert r.exit_code == 0, r.output
    assert "drop 'Poster drop': 30 × POSTER at 8.00 until" in r.output
    r = run.invoke(cli, ["pos", "drop", "start", "Again", "--sku", "POSTER", "--price", "-1", "--quantity", "3",
                         "--minutes", "5"], env=env)
    assert r.exit_code == 1 and "error:" in r.output and "Traceback" not in r.output
    shown = json.loads(run.invoke(cli, ["pos", "drop", "status", "--json"], env=env).output)
    assert [(d["name"], d["left"], d["phase"]) for d in shown] == [("Poster drop", 30, "open")]
    r = run.invoke(cli, ["pos", "drop", "stop", "Poster drop"], env=env)
    assert r.exit_code == 0 and "stopped: 0 sold of 30" in r.output
