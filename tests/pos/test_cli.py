"""`fieldkit pos ...` runs the same checkout as the web: receipt number and change, clear errors, exit codes."""

from __future__ import annotations

from click.testing import CliRunner

from kit.cli import cli


def run(*args: str):
    return CliRunner().invoke(cli, ["pos", *args], catch_exceptions=False)


def test_sell_prints_receipt_and_change_then_shift_close(pos_kit):
    r = run("sell", "TS-L", "STICKER:2", "--pay", "cash:50.00")
    assert r.exit_code == 0, r.output
    assert "receipt test1-1" in r.output and "change  21.00 EUR" in r.output
    r = run("sell", "HOODIE-M", "--pay", "card:T-9:4242:30.00", "--pay", "cash:20.00", "--key", "cli-key-0001")
    assert "change  5.00 EUR" in r.output
    again = run("sell", "HOODIE-M", "--pay", "card:T-9:4242:30.00", "--pay", "cash:20.00", "--key", "cli-key-0001")
    assert "already recorded" in again.output and pos_kit.db.scalar("SELECT COUNT(*) FROM pos_sales") == 2
    assert run("shift", "report").output.count("Sales (2)") == 1
    r = run("refund", "test1-1", "--line", "2:1", "--reason", "bent")
    assert "refund test1-3 for test1-1: 2.00 EUR back by cash" in r.output
    r = run("shift", "close", "--count", "20.00=1", "--count", "5.00=1", "--count", "1.00=2")
    # expected: 29.00 + 15.00 cash part of the hoodie − 2.00 refunded = 42.00; counted 27.00
    assert r.exit_code == 0 and "Expected                                   42.00" in r.output
    assert "Difference                                -15.00" in r.output


def test_bad_input_exits_1_with_one_clear_line(pos_kit):
    for args, message in [
        (("sell", "NOPE", "--pay", "cash:5.00"), "unknown SKU 'NOPE'"),
        (("sell", "TS-L:0", "--pay", "cash:50.00"), "at least 1"),
        (("sell", "TS-L", "--pay", "cash:5.00"), "below the total"),
        (("sell", "TS-L", "--pay", "cash:1e9"), "not an amount"),
        (("refund", "test1-77", "--reason", "x"), "no sale"),
        (("pickup", "PU-NONE"), "unknown pickup code"),
    ]:
        r = CliRunner().invoke(cli, ["pos", *args])
        assert r.exit_code == 1, (args, r.output)
        assert message in r.output
        assert "Traceback" not in r.output
    assert pos_kit.db.scalar("SELECT COUNT(*) FROM pos_sales") == 0
    r = CliRunner().invoke(cli, ["pos", "sell", "TS-L", "--pay", "bitcoin:5"])
    assert r.exit_code == 2 and "cash:AMOUNT" in r.output
