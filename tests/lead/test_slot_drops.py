"""A run-sheet slot that opens a live drop: the lead service says when, the pos service opens it (or says why not)."""

from __future__ import annotations

import time
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from lead.runsheet import RunSheetError, parse_runsheet
from pos.drops import status
from tests.checkin.conftest import kit_config
from tests.lead.conftest import runsheet_text
from tests.pos.test_drops_site import MerchKit

pytestmark = pytest.mark.slow
TZ = ZoneInfo("UTC")


def with_drop(text: str, slot_name: str, drop: str) -> str:
    marker = f'name = "{slot_name}"\n'
    head, _, tail = text.partition(marker)
    rest = tail.split("[[slot]]", 1)
    return head + marker + rest[0] + drop + ("[[slot]]" + rest[1] if len(rest) > 1 else "")


def test_a_slots_drop_is_read_and_a_bad_one_names_its_line():
    text = with_drop(runsheet_text(TZ, 1_800_000_000, [("Poetry", 20), ("Open mic", 30)]), "Open mic",
                     '[slot.drop]\nsku = "POSTER"\nprice = "8.00"\nquantity = 30\nat = "ending"\n')
    sheet = parse_runsheet(text, TZ)
    assert sheet.slots[1].drop == {"name": "Open mic drop", "sku": "POSTER", "price_cents": 800, "quantity": 30,
                                   "minutes": 1.0, "at": "ending"}
    with pytest.raises(RunSheetError, match=r"line \d+: slot 2 \(Open mic\) drop: price must be an amount"):
        parse_runsheet(text.replace('price = "8.00"', 'price = "-8"'), TZ)
    with pytest.raises(RunSheetError, match="drop: unknown key 'colour'"):
        parse_runsheet(text.replace('quantity = 30', 'quantity = 30\ncolour = 1'), TZ)


def test_the_slot_opens_its_drop_at_start_and_a_drop_pos_cannot_sell_is_refused_with_the_reason(tmp_path, mosquitto,
                                                                                                  start_lead):
    config = kit_config(tmp_path / "k", mosquitto.port, "merch1", "fair", lead_ending_seconds=2)
    pos = MerchKit(config)
    try:
        lead = start_lead(config)
        start = time.time() + 1.5
        text = runsheet_text(config.tz, start, [("Poetry", 0.1), ("Open mic", 0.1)])
        text = with_drop(text, "Poetry", '[slot.drop]\nname = "Poster drop"\nsku = "POSTER"\nprice = "8.00"\nquantity = 5\n')
        text = with_drop(text, "Open mic", '[slot.drop]\nname = "Ghost drop"\nsku = "NOPE"\nprice = "1.00"\nquantity = 5\n')
        lead.import_runsheet(text)
        from kit.testing import wait_for

        wait_for(lambda: status(pos.ctx.db.conn, time.time()), 15, what="the slot's drop opened by the pos service")
        drop = status(pos.ctx.db.conn, time.time())[0]
        assert (drop["name"], drop["sku"], drop["price_cents"], drop["quantity"], drop["phase"]) == (
            "Poster drop", "POSTER", 800, 5, "open")
        assert pos.sell("POSTER")["lines"][0]["unit_cents"] == 800
        wait_for(lambda: any(m["when"] == "refused" for m in pos.heard), 20, what="the second slot's drop refused")
        refused = next(m for m in pos.heard if m["when"] == "refused")
        assert refused["drop"] == "Ghost drop" and "unknown SKU 'NOPE'" in refused["reason"]
        assert len(status(pos.ctx.db.conn, time.time())) == 1
    finally:
        pos.stop()


def test_runsheet_check_asks_the_pos_service_about_each_drop(tmp_path, mosquitto):
    from kit.cli import cli

    config = kit_config(tmp_path / "k", mosquitto.port, "merch1", "fair")
    pos = MerchKit(config)
    try:
        text = runsheet_text(config.tz, time.time() + 600, [("Poetry", 20), ("Open mic", 30)])
        text = with_drop(text, "Poetry", '[slot.drop]\nsku = "POSTER"\nprice = "8.00"\nquantity = 5\n')
        text = with_drop(text, "Open mic", '[slot.drop]\nsku = "NOPE"\nprice = "1.00"\nquantity = 5\n')
        sheet = tmp_path / "tonight.toml"
        sheet.write_text(text)
        env = {"FIELDKIT_HOME": str(tmp_path / "k"), "FIELDKIT_MQTT_PORT": str(mosquitto.port), "FIELDKIT_KIT_ID": "merch1",
               "FIELDKIT_KIT_SITE": "fair"}
        time.sleep(1.0)  # the pos service subscribes to its commands
        result = CliRunner().invoke(cli, ["runsheet", "check", str(sheet)], env=env)
        assert result.exit_code == 1, result.output
        assert "drop 'Poetry drop' (Poetry): pos can open it (5 × POSTER)" in result.output
        assert "drop 'Open mic drop' (Open mic): pos refuses: unknown SKU 'NOPE'" in result.output
    finally:
        pos.stop()
