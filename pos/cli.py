"""``fieldkit pos ...``: sell, shifts, catalogue, pickups, refunds, reprints. Same domain code as the web."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import click

from kit.cli import get_config, get_db, print_report
from pos.cli_support import command_ledger as _ledger
from pos.cli_support import domain_errors
from pos.drop_cli import drop
from pos.shift_cli import shift


@click.group("pos")
def pos() -> None:
    """Point of sale: sell, shifts and Z reports, catalogue, pickups, refunds, receipts.

    \b
    Example:
      fieldkit pos sell TS-L STICKER:2 --pay cash:50.00
    """


pos.add_command(shift)
pos.add_command(drop)


def parse_pay(spec: str) -> dict:
    """``cash:20.00``, ``card:REF:25.00`` (``card:REF:1234:25.00`` with last four), ``other:voucher:5.00``."""
    parts = spec.split(":")
    method = parts[0].lower()
    if method == "cash" and len(parts) == 2:
        return {"method": "cash", "amount": parts[1]}
    if method == "card" and len(parts) in (3, 4):
        return {"method": "card", "reference": parts[1], "last4": parts[2] if len(parts) == 4 else "",
                "amount": parts[-1]}
    if method == "other" and len(parts) == 3:
        return {"method": "other", "reference": parts[1], "amount": parts[2]}
    raise click.BadParameter(f"{spec!r}: use cash:AMOUNT, card:REF[:LAST4]:AMOUNT or other:WHAT:AMOUNT", param_hint="--pay")


def parse_discount_option(spec: str | None) -> dict | None:
    if not spec:
        return None
    value, _, reason = spec.partition(":")
    return {"percent": value[:-1], "reason": reason} if value.endswith("%") else {"amount": value, "reason": reason}


def parse_item(spec: str) -> dict:
    sku, _, qty = spec.partition(":")
    if qty and not qty.lstrip("-").isdigit():
        raise click.BadParameter(f"{spec!r}: quantity must be a whole number (SKU:QTY)", param_hint="SKU[:QTY]")
    return {"sku": sku, "qty": int(qty) if qty else 1}


@pos.command("sell")
@click.argument("items", nargs=-1, required=True)
@click.option("--pay", "pays", multiple=True, help="cash:20.00, card:REF[:LAST4]:AMOUNT or other:WHAT:AMOUNT (repeatable).")
@click.option("--discount", help="Cart discount: 10%:reason or 2.00:reason.")
@click.option("--key", help="Idempotency key: running the same sale again with it makes no second sale.")
@click.option("--json", "as_json", is_flag=True, help="Print the sale as JSON.")
@domain_errors
def sell(items: tuple[str, ...], pays: tuple[str, ...], discount: str | None, key: str | None, as_json: bool) -> None:
    """Sell SKU[:QTY]... and print the receipt number and the change due.

    Amounts are decimals like the catalogue (20.00). The receipt is queued for the printer.

    \b
    Example:
      fieldkit pos sell TS-L STICKER:2 --pay cash:50.00
      fieldkit pos sell HOODIE-M --pay card:A1B2C3:45.00
    """
    from pos.checkout import make_sale, parse_sale_request
    from pos.money import format_cents

    config = get_config()
    body = {"items": [parse_item(s) for s in items], "payments": [parse_pay(p) for p in pays],
            "discount": parse_discount_option(discount), "idempotency_key": key or f"cli-{uuid.uuid4()}"}
    result = make_sale(get_db(), _ledger(config), config, parse_sale_request(body), by="cli")
    s = result.sale
    if as_json:
        click.echo(json.dumps(s, indent=2))
        return
    cur = s["currency"]
    click.echo(f"receipt {s['receipt']}{' (already recorded)' if result.replayed else ''}")
    click.echo(f"total   {format_cents(s['total_cents'], cur)}")
    click.secho(f"change  {format_cents(s['change_cents'], cur)}", bold=True)
    if s["oversold"]:
        click.secho(f"note: sold past the stock of {', '.join(s['oversold'])}", fg="yellow")


@pos.group("catalogue")
def catalogue() -> None:
    """The catalogue (products, variants, prices, stock).

    \b
    Example:
      fieldkit pos catalogue import catalogue.csv
    """


@catalogue.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Show what would change without importing.")
def catalogue_import(file: str, dry_run: bool) -> None:
    """Import a catalogue CSV or JSON (replaces the current one); bad rows are listed and skipped.

    The CSV header names at least sku, name and price (a decimal such as 25.00); optional
    variant, tax_rate (percent), stock, barcode, active.

    \b
    Example:
      fieldkit pos catalogue import catalogue.csv --dry-run
    """
    from kit.documents import import_document

    _, report = import_document(get_config(), get_db(), "pos.catalogue", Path(file).read_bytes(), Path(file).name,
                                dry_run=dry_run)
    print_report(report, dry_run)


@catalogue.command("list")
def catalogue_list() -> None:
    """List products with price and remaining stock.

    \b
    Example:
      fieldkit pos catalogue list
    """
    from pos.catalogue import products, sold_by_sku
    from pos.money import format_cents

    db = get_db()
    sold = sold_by_sku(db.conn)
    for p in products(db.conn):
        left = "" if p.stock is None else f"{p.stock - sold.get(p.sku, 0)} left"
        click.echo(f"{p.sku:<14} {p.label:<28} {format_cents(p.price_cents):>9} {p.currency}  {left}"
                   + ("" if p.active else "  (inactive)"))


@pos.command("pickup")
@click.argument("code")
@click.option("--check", is_flag=True, help="Only show the order; do not mark it collected.")
@click.option("--early-ok", is_flag=True, help="Hand over before the pickup window opens (a lead's decision).")
@domain_errors
def pickup(code: str, check: bool, early_ok: bool) -> None:
    """Hand over a pre-ordered pickup: shows what to hand over and marks it collected (once).

    Before its pickup window it says when to come back (--early-ok hands over anyway); after the
    window it is handed over and recorded as late.

    \b
    Example:
      fieldkit pos pickup PU-7F3K2
    """
    from pos.pickups import collect, lookup

    config = get_config()
    ledger = _ledger(config)
    order = (lookup(get_db().conn, code, ledger.clock.time(), config.tz) if check
             else collect(get_db(), ledger, code, by="cli", tz=config.tz, early_ok=early_ok))
    click.echo(f"{order['code']} {order['name']}".strip())
    for it in order["items"]:
        click.secho(f"  {it['qty']}x {it['description'] or it['sku']}", bold=True)
    if check:
        click.echo(order["verdict"] if not order["collected_at"] else "already collected")
    else:
        click.echo({"late": "late — handed over and recorded as late", "early_override": "early — handed over by a lead"}
                   .get(order["timing"], "hand over and done"))


@pos.command("refund")
@click.argument("receipt")
@click.option("--reason", required=True, help="Why (wrong size, damaged...).")
@click.option("--line", "lines", multiple=True, help="LINE:QTY of the original receipt to take back (repeatable).")
@click.option("--amount", help="Refund an amount without taking goods back.")
@click.option("--void", is_flag=True, help="Void the whole sale.")
@click.option("--method", type=click.Choice(["cash", "card", "other"]), help="How the money goes back (default: as paid).")
@domain_errors
def refund_cmd(receipt: str, reason: str, lines: tuple[str, ...], amount: str | None, void: bool, method: str | None) -> None:
    """Refund (part of) a sale or void it: a new receipt that references the original.

    Without --line or --amount everything not yet refunded is refunded.

    \b
    Example:
      fieldkit pos refund kit1-12 --line 1:1 --reason "wrong size"
      fieldkit pos refund kit1-13 --void --reason "keyed twice"
    """
    from pos.money import format_cents, parse_cents
    from pos.refunds import refund

    config = get_config()
    items = None
    if lines:
        items = []
        for spec in lines:
            no, _, qty = spec.partition(":")
            if not no.isdigit() or (qty and not qty.isdigit()):
                raise ValueError(f"{spec!r}: write --line LINE:QTY, e.g. 1:1")
            items.append({"line": int(no), "qty": int(qty or 1)})
    doc = refund(get_db(), _ledger(config), config, receipt, reason=reason, items=items,
                 amount_cents=parse_cents(amount, what="refund amount") if amount else None, void=void,
                 method=method, by="cli")
    click.echo(f"{doc['kind']} {doc['receipt']} for {doc['original_receipt']}: "
               f"{format_cents(doc['total_cents'], doc['currency'])} back by {doc['payments'][0]['method']}")


@pos.command("reprint")
@click.argument("receipt")
@domain_errors
def reprint_cmd(receipt: str) -> None:
    """Queue a copy of a receipt for the printer.

    \b
    Example:
      fieldkit pos reprint kit1-12
    """
    from pos.receipts import reprint

    config = get_config()
    reprint(get_db(), config, receipt)
    click.echo(f"copy of {receipt} queued")


@pos.command("printer")
def printer_cmd() -> None:
    """Show the receipt printer's status and the print queue.

    \b
    Example:
      fieldkit pos printer
    """
    from drivers.base import DeviceUnavailable
    from drivers.printer import open_printer
    from pos import printqueue

    config = get_config()
    try:
        printer = open_printer(config)
        st = printer.status()
        click.echo(f"{printer.description}: {'ready' if st.ready else 'not ready'} (paper {st.paper}) {st.reason}")
    except DeviceUnavailable as e:
        click.echo(f"printer: {e}")
    click.echo(f"{printqueue.depth(get_db())} job(s) waiting")


@pos.command("compact")
def compact_cmd() -> None:
    """Delete printed jobs past pos.print_retention_hours and give their space back (kit stopped).

    Kits made from 2026-12 give space back by themselves; older kits reuse it but do not shrink until
    this runs once (it switches them to incremental vacuum). Needs free space the size of kit.db.

    \b
    Example:
      systemctl stop 'fieldkit-*' && fieldkit pos compact
    """
    from kit.db import DatabaseBusy, DatabaseLock
    from pos import printqueue

    config = get_config()
    lock = DatabaseLock(config.db_path)
    try:
        lock.exclusive()
    except DatabaseBusy as e:
        click.secho(f"error: {e}", fg="red", err=True)
        sys.exit(1)
    try:
        r = printqueue.compact(get_db(), config["pos.print_retention_hours"])
    finally:
        lock.release()
    click.echo(f"{r['pruned']} printed job(s) deleted; {r['bytes_before']:,} -> {r['bytes_after']:,} bytes"
               f" (incremental vacuum {'on' if r['auto_vacuum'] == 2 else 'OFF'})")
