"""``fieldkit pos shift ...``: open with a float, move cash, the X report, close with the count (Z report)."""

from __future__ import annotations

import json

import click

from kit.cli import get_config, get_db
from pos.cli_support import command_ledger as _ledger
from pos.cli_support import domain_errors


@click.group("shift")
def shift() -> None:
    """Open a shift with a float, move cash, see the X report, close with the count (Z report).

    \b
    Example:
      fieldkit pos shift open --float 100.00
    """


@shift.command("open")
@click.option("--float", "float_", default="0.00", show_default=True, help="Cash in the drawer at the start.")
@domain_errors
def shift_open(float_: str) -> None:
    """Open a shift with the starting cash float.

    \b
    Example:
      fieldkit pos shift open --float 100.00
    """
    from pos.money import format_cents, parse_cents
    from pos.shifts import open_shift

    config = get_config()
    s = open_shift(get_db(), _ledger(config), parse_cents(float_, what="float"), by="cli")
    click.echo(f"shift {s['number']} open with a float of {format_cents(s['float_cents'], config['kit.currency'])}")


@shift.command("cash")
@click.argument("amount")
@click.option("--out", "take_out", is_flag=True, help="Cash taken out of the drawer (a safe drop).")
@click.option("--reason", required=True, help="Why the cash moved.")
@domain_errors
def shift_cash(amount: str, take_out: bool, reason: str) -> None:
    """Record cash put into (or with --out taken out of) the drawer.

    \b
    Example:
      fieldkit pos shift cash 50.00 --reason "change from the bank"
      fieldkit pos shift cash 200.00 --out --reason "safe drop"
    """
    from pos.money import format_cents, parse_cents
    from pos.shifts import cash_move

    config = get_config()
    cents = parse_cents(amount, what="cash amount")
    m = cash_move(get_db(), _ledger(config), -cents if take_out else cents, reason, by="cli")
    click.echo(f"cash {'out' if take_out else 'in'}: {format_cents(abs(m['amount_cents']), config['kit.currency'])} ({reason})")


@shift.command("report")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--last", is_flag=True, help="The Z report of the last closed shift instead.")
@domain_errors
def shift_report(as_json: bool, last: bool) -> None:
    """Print the X report of the open shift (or the last Z report).

    \b
    Example:
      fieldkit pos shift report
    """
    from pos.reports import report_document
    from pos.shifts import last_closed, x_report

    config = get_config()
    report = last_closed(get_db()) if last else x_report(get_db(), config)
    if report is None:
        raise LookupError("no shift has been closed yet")
    _show_report(report, config, as_json, report_document)


def _show_report(report: dict, config, as_json: bool, report_document) -> None:
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for line in report_document(report, config):
        if "text" in line:
            click.echo(line["text"])


@shift.command("close")
@click.option("--counted", help="The counted cash as a total, e.g. 312.50.")
@click.option("--count", "counts", multiple=True, help="Per denomination: 20.00=3 (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the Z report as JSON.")
@domain_errors
def shift_close(counted: str | None, counts: tuple[str, ...], as_json: bool) -> None:
    """Close the shift with the counted cash; prints and stores the Z report.

    \b
    Example:
      fieldkit pos shift close --counted 312.50
      fieldkit pos shift close --count 20.00=3 --count 5.00=2 --count 0.50=7
    """
    from pos.money import parse_cents
    from pos.reports import report_document
    from pos.shifts import ShiftError, close_shift

    config = get_config()
    denoms = None
    if counts:
        denoms = {}
        for c in counts:
            value, _, n = c.partition("=")
            if not n.isdigit():
                raise ShiftError(f"{c!r}: write each count as DENOMINATION=COUNT, e.g. 20.00=3")
            d = parse_cents(value, what="denomination")
            denoms[d] = denoms.get(d, 0) + int(n)
    total = parse_cents(counted, what="counted cash") if counted is not None else None
    report = close_shift(get_db(), _ledger(config), config, counted_cents=total, denominations=denoms, by="cli")
    _show_report(report, config, as_json, report_document)
