"""``fieldkit pos drop ...``: a limited quantity at an offer price for a window, on every merch kit of the site."""

from __future__ import annotations

import json
import sys
from datetime import datetime

import click

from kit.cli import get_config, get_db
from pos.cli_support import command_ledger


@click.group("drop")
def drop() -> None:
    """Live drops: start, status, stop (every merch kit of the site sells the same drop).

    \b
    Example:
      fieldkit pos drop start "Poster drop" --sku POSTER --price 10.00 --quantity 30 --minutes 15
    """


def _fail(e: Exception) -> None:
    click.secho(f"error: {e}", fg="red", err=True)
    sys.exit(1)


@drop.command("start")
@click.argument("name")
@click.option("--sku", required=True, help="The product variant the drop sells.")
@click.option("--price", required=True, help="The offer price, e.g. 10.00.")
@click.option("--quantity", type=int, required=True, help="Units for the whole site.")
@click.option("--minutes", type=float, required=True, help="How long the offer runs.")
@click.option("--starts", help="A later start, e.g. 21:10 or 2026-12-04T21:10 (kit.timezone); default now.")
@click.option("--members-minutes", type=float, help="Members first: for this many minutes only --member-types buy.")
@click.option("--member-types", help="Ticket types that buy first, comma-separated, e.g. Member,Patron.")
def drop_start(name: str, sku: str, price: str, quantity: int, minutes: float, starts: str | None,
               members_minutes: float | None, member_types: str | None) -> None:
    """Start a drop now (or at --starts) on every merch kit of the site.

    \b
    Example:
      fieldkit pos drop start "Poster drop" --sku POSTER --price 10.00 --quantity 30 --minutes 15
      fieldkit pos drop start "Members poster" --sku POSTER --price 8.00 --quantity 20 --minutes 15 \\
          --members-minutes 5 --member-types Member
    """
    from kit.localtime import parse_when
    from pos.drops import DropError, start_drop
    from pos.money import MoneyError, parse_cents

    config = get_config()
    ledger = command_ledger(config)
    try:
        price_cents = parse_cents(price, what="price")
        start = None
        if starts:
            text = starts if "T" in starts or "-" in starts else datetime.now(config.tz).strftime("%Y-%m-%dT") + starts
            start = parse_when(text, config.tz)
        with get_db().transaction() as conn:
            view = start_drop(conn, ledger, name=name, sku=sku, price_cents=price_cents, quantity=quantity,
                              minutes=minutes, starts_at=start, by="cli", members_minutes=members_minutes,
                              member_types=member_types.split(",") if member_types else None)
    except (DropError, MoneyError, ValueError) as e:
        _fail(e)
    members = ""
    if view["members_until"]:
        members = (f", members first ({', '.join(view['member_types'])}) until "
                   f"{datetime.fromtimestamp(view['members_until'], config.tz):%H:%M}")
    click.echo(f"drop {view['name']!r}: {view['quantity']} × {view['sku']} at {price} until "
               f"{datetime.fromtimestamp(view['ends_at'], config.tz):%H:%M} ({view['phase']}){members}")


@drop.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def drop_status(as_json: bool) -> None:
    """Every drop: quantity, sold on all kits (as far as this kit has heard), left, phase, ends at.

    \b
    Example:
      fieldkit pos drop status --json
    """
    from pos.drops import status

    config = get_config()
    views = status(get_db().conn, command_ledger(config).clock.time())
    if as_json:
        click.echo(json.dumps(views, indent=2, ensure_ascii=False))
        return
    if not views:
        click.echo("no drops")
    for v in views:
        flag = f"  OVERSOLD BY {v['oversold']}" if v["oversold"] else ""
        if v["tickets_reused"]:
            flag += f"  MEMBER TICKET USED TWICE ×{v['tickets_reused']}"
        click.echo(f"{v['name']:<24} {v['sku']:<12} {v['sold']:>4}/{v['quantity']:<4} sold, {v['left']:>4} left, "
                   f"{v['phase']:<8} ends {datetime.fromtimestamp(v['ends_at'], config.tz):%H:%M}{flag}")


@drop.command("stop")
@click.argument("name")
def drop_stop(name: str) -> None:
    """End a drop now on every merch kit: the product is back at its normal price.

    \b
    Example:
      fieldkit pos drop stop "Poster drop"
    """
    from pos.drops import DropError, stop_drop

    config = get_config()
    try:
        with get_db().transaction() as conn:
            view = stop_drop(conn, command_ledger(config), name, by="cli")
    except DropError as e:
        _fail(e)
    click.echo(f"drop {view['name']!r} stopped: {view['sold']} sold of {view['quantity']}")
