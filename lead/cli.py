"""``fieldkit runsheet ...``: import, check and show the evening's run-sheet; Next slot and Running late."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import click

from kit.cli import get_config, get_db, print_report


def _ledger(config):
    from kit.clock import KitClock
    from kit.ledger import Ledger

    clock = KitClock(config.data_dir, config["kit.clock_assume_synced"], config["kit.clock_method"])
    return Ledger(config.kit_id, clock, config["site.max_clock_ahead_seconds"])


@click.group("runsheet")
def runsheet() -> None:
    """The evening's run-sheet: micro-stage slots, Now / Next, moving on early or running late.

    \b
    Example:
      fieldkit runsheet import friday.toml
      fieldkit runsheet show
    """


@runsheet.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def import_cmd(file: str) -> None:
    """Import a run-sheet (TOML) and make it the site's: every kit of the site runs it.

    \b
    Example:
      fieldkit runsheet import friday.toml
    """
    from kit.documents import import_document
    from lead.documents import KIND

    _, report = import_document(get_config(), get_db(), KIND, Path(file).read_bytes(), Path(file).name)
    print_report(report)


@runsheet.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def check_cmd(file: str) -> None:
    """Check a run-sheet without importing it: every slot with its times, or the line that is wrong.

    \b
    Example:
      fieldkit runsheet check friday.toml
    """
    from lead.runsheet import RunSheetError, parse_runsheet

    config = get_config()
    try:
        sheet = parse_runsheet(Path(file).read_bytes(), config.tz, Path(file).name)
    except RunSheetError as e:
        click.secho(f"error: {e}", fg="red", err=True)
        sys.exit(1)
    click.echo(f"OK {sheet.name}: {len(sheet.slots)} slots")
    for s in sheet.slots:
        click.echo(f"  {_hm(s.start, config.tz)}–{_hm(s.end, config.tz)}  {s.name}"
                   + (f"  ({s.stage})" if s.stage else ""))
    refused = _ask_pos_about_drops(config, [s for s in sheet.slots if s.drop])
    if refused:
        sys.exit(1)


def _ask_pos_about_drops(config, slots) -> int:
    """Each slot's drop, asked of this kit's pos service over the bus (features never import each other)."""
    if not slots:
        return 0
    from kit.bus import Bus

    bus = Bus.from_config(config, "cli-runsheet-check", will=False)
    if not bus.start(wait=2):
        bus.stop(clean=False)
        click.echo(f"  drops not checked: no broker answers at {config['mqtt.host']}:{config['mqtt.port']} "
                   "(is the kit running?)")
        return 0
    refused = 0
    try:
        for s in slots:
            d = s.drop
            answer = bus.request("pos", "check_drop", {k: d[k] for k in ("name", "sku", "price_cents", "quantity", "minutes")},
                                 timeout=3.0)
            if answer is None:
                click.echo(f"  drop {d['name']!r} ({s.name}): not checked, the pos service does not answer")
            elif answer.get("ok"):
                click.echo(f"  drop {d['name']!r} ({s.name}): pos can open it ({d['quantity']} × {d['sku']})")
            else:
                refused += 1
                click.secho(f"  drop {d['name']!r} ({s.name}): pos refuses: {answer.get('error')}", fg="red")
    finally:
        bus.stop(clean=False)
    return refused


@runsheet.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_cmd(as_json: bool) -> None:
    """The run-sheet as it runs now: every slot's time (moved by Next / Running late), now and next.

    \b
    Example:
      fieldkit runsheet show --json
    """
    from lead.evening import evening

    config = get_config()
    db = get_db()
    ev = evening(db.conn, config.kit_id, config.tz)
    if ev.sheet is None:
        click.echo("no run-sheet: import one with `fieldkit runsheet import FILE`")
        sys.exit(1)
    now = _ledger(config).clock.time()
    view = ev.at(now)
    if as_json:
        click.echo(json.dumps({"name": ev.sheet.name, "date": ev.sheet.evening, **view.as_dict(),
                               "slots": [t.as_dict() for t in ev.slots]}, indent=2, ensure_ascii=False))
        return
    click.echo(f"{ev.sheet.name} ({ev.sheet.evening})" + (f", {round(view.behind_seconds / 60)} min behind plan"
                                                          if view.behind_seconds > 30 else ""))
    for t in ev.slots:
        mark = "NOW " if view.current and t.slot.index == view.current.slot.index else (
            "NEXT" if view.next and t.slot.index == view.next.slot.index else "    ")
        moved = "" if abs(t.start - t.slot.start) < 30 else f"  (planned {_hm(t.slot.start, config.tz)})"
        click.echo(f"{mark} {_hm(t.start, config.tz)}–{_hm(t.end, config.tz)}  {t.slot.name}{moved}")


def _change(action: str, minutes: float | None = None) -> None:
    from lead.evening import LeadError, next_slot, running_late

    config = get_config()
    db = get_db()
    ledger = _ledger(config)
    try:
        with db.transaction() as conn:
            view = (next_slot(conn, ledger, config.tz, by="cli") if action == "next"
                    else running_late(conn, ledger, config.tz, minutes, by="cli"))
    except LeadError as e:
        click.secho(f"error: {e}", fg="red", err=True)
        sys.exit(1)
    cur, nxt = view["current"], view["next"]
    click.echo(f"now: {cur['name']} until {_hm(cur['ends_at'], config.tz)}" if cur
               else "now: the programme is over" if view["finished"] else "now: between slots")
    click.echo(f"next: {nxt['name']} at {_hm(nxt['starts_at'], config.tz)}" if nxt else "next: nothing after this")


@runsheet.command("next")
def next_cmd() -> None:
    """Move on now: the next slot starts now and every later slot moves with it (every kit follows).

    \b
    Example:
      fieldkit runsheet next
    """
    _change("next")


@runsheet.command("doors-open")
def doors_open_cmd() -> None:
    """Say the doors are open now: the evening's go-live (doors open to first sale) counts from here.

    \b
    Example:
      fieldkit runsheet doors-open
    """
    from lead.evening import LeadError, open_doors

    config = get_config()
    try:
        with get_db().transaction() as conn:
            opened = open_doors(conn, _ledger(config), config.tz, by="cli")
    except LeadError as e:
        click.secho(f"error: {e}", fg="red", err=True)
        sys.exit(1)
    click.echo(f"doors open at {_hm(opened['at'], config.tz)}")


@runsheet.command("late")
@click.argument("minutes", type=click.FloatRange(min=0, min_open=True, max=240))
def late_cmd(minutes: float) -> None:
    """Running late: the running slot gets MINUTES more and every later slot moves (every kit follows).

    \b
    Example:
      fieldkit runsheet late 5
    """
    _change("late", minutes)


def _hm(at: float, tz) -> str:
    return datetime.fromtimestamp(at, tz).strftime("%H:%M")


@click.command("metrics")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (rates end in _per_100; `help` says what each counts).")
def metrics_cmd(as_json: bool) -> None:
    """The evening's numbers from this kit's ledger: attendance, go-live, conversion, per slot.

    \b
    Example:
      fieldkit metrics --json
    """
    from lead.numbers import kit_numbers

    config = get_config()
    numbers = kit_numbers(get_db(), config.tz)
    if as_json:
        click.echo(json.dumps(numbers, indent=2, ensure_ascii=False))
        return
    for line in numbers_text(numbers):
        click.echo(line)


def numbers_text(n: dict) -> list[str]:
    a, g, c = n["attendance"], n["go_live"], n["conversion"]
    show = lambda v, unit="": "—" if v is None else f"{v}{unit}"  # noqa: E731
    lines = [
        f"admitted            {a['admitted']}" + (f" of {a['tickets_sold']} tickets ({show(a['attendance_percent'], ' %')})"
                                                  if a["tickets_sold"] else "")
        + (f", {show(a['attendance_of_rsvps_percent'], ' %')} of {a['rsvps']} RSVPs" if a.get("rsvps") else ""),
        f"exits               {a['exits']}",
        f"doors open          {show(g['doors_open_at'])}",
        f"first sale          {show(g['first_sale_at'])} ({show(g['minutes_to_first_sale'], ' min')} after doors open)",
        f"sales               {c['sales']} ({show(c['sales_per_100'])} per 100 admitted)",
        f"pickups collected   {c['pickups_collected']} ({show(c['pickups_collected_per_100'])} per 100 admitted)",
    ]
    if n["slots"]:
        lines.append("slots               people in / sales / per 100")
        for s in n["slots"]:
            lines.append(f"  {s['name'][:28]:<28} {s['people_in']:>4} / {s['buyers']:>4} / {show(s['conversion_per_100'])}")
    return lines
