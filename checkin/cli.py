"""``fieldkit checkin ...``: the door (scan, admit, undo, rehearsal, guest list, counts); tickets are in tickets_cli."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import click

from kit.cli import get_config

REFUSED_EXIT = 2


def cli_context():
    """The kit's context for one CLI command (database, ledger; the bus is not started)."""
    from kit.service import make_context

    return make_context("cli", get_config())


def _rules(door: str | None = None):
    from checkin.validate import DoorRules

    rules = DoorRules.from_config(get_config())
    if door:
        rules = DoorRules(**{**rules.__dict__, "door": door})
    return rules


def _publish(config, topic: str, payload: dict) -> bool:
    """Best effort: tell the bus (door screens, printer) when a broker answers; the ledger has it anyway."""
    from kit.bus import Bus
    from kit.testing import port_open

    if not port_open(config["mqtt.host"], config["mqtt.port"], timeout=0.3):
        return False
    bus = Bus.from_config(config, f"cli{uuid.uuid4().hex[:6]}", will=False)
    if not bus.start(wait=2):
        bus.stop(clean=False)
        return False
    info = bus.client.publish(topic, json.dumps(payload, default=str), qos=1)
    try:
        info.wait_for_publish(timeout=2)
    except (RuntimeError, ValueError):
        pass
    bus.stop(clean=False)
    return True


# --- fieldkit checkin ------------------------------------------------------------------------------

@click.group("checkin")
def checkin() -> None:
    """The door: scan, admit by hand, undo, rehearsal, guest list, counts.

    \b
    Example:
      fieldkit checkin scan "$(cat ticket.txt)" --json
    """


@checkin.command("scan")
@click.argument("payload")
@click.option("--door", help="Door name to record (default: checkin.door_name).")
@click.option("--exit", "is_exit", is_flag=True, help="Record an exit instead of an entry.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def scan_cmd(payload: str, door: str | None, is_exit: bool, as_json: bool) -> None:
    """Validate and record one scanned code, as a scanner would. Exit 0 admitted, 2 refused.

    \b
    Example:
      fieldkit checkin scan 'yJ1c2VyI...==' --door "Door 2" --json
    """
    from checkin.counts import read_counts
    from checkin.events import scanned_message
    from checkin.scans import record_scan
    from checkin.validate import KeyRing
    from kit import topics

    ctx = cli_context()
    rules = _rules(door)
    result = record_scan(ctx.db, ctx.ledger, rules, payload, keyring=KeyRing(), source="cli",
                         direction="exit" if is_exit else None)
    message = scanned_message(result, rules, read_counts(ctx.db.conn))
    _publish(ctx.config, topics.event(rules.kit, *topics.CHECKIN_SCANNED), message)
    if as_json:
        click.echo(json.dumps(message, ensure_ascii=False))
    else:
        colour = {"green": "green", "red": "red", "amber": "yellow"}[message["colour"]]
        who = " · ".join(p for p in (message["name"], message["ticket_type"]) if p)
        click.secho(f"{message['verdict'].upper()}  {message['reason']}" + (f"  ({who})" if who else ""), fg=colour, bold=True)
    sys.exit(0 if result["verdict"] in ("admit", "admit_reentry", "exit") else REFUSED_EXIT)


@checkin.command("admit")
@click.argument("code")
@click.option("--reason", default="", help="Why by hand, e.g. 'phone dead, ID checked' (needed without --check).")
@click.option("--check", "checks", multiple=True, metavar="FIELD=VALUE",
              help="The second check: two identifiers the guest gave (order_code, email, phone_last4, postcode,"
                   " birth_date).")
def admit_cmd(code: str, reason: str, checks: tuple[str, ...]) -> None:
    """Admit a guest by hand: CODE is the order code or the ticket's code.

    With two --check identifiers that match the list the admission's method is second_check; with a
    reason alone it is the lead's override (lead_override). Exit 2 when refused.

    \b
    Example:
      fieldkit checkin admit ABC12 --check email=anna@example.org --check phone_last4=4821
      fieldkit checkin admit ABC12 --reason "no match; lead knows her"
    """
    from checkin.fallback_cli import parse_checks
    from checkin.scans import CheckinError, manual_admit

    ctx = cli_context()
    rows = ctx.db.query("SELECT ticket_key, name FROM checkin_tickets WHERE ticket_key = ? OR order_code = ?"
                        " COLLATE NOCASE", (code, code))
    if len(rows) != 1:
        raise click.UsageError(f"{len(rows)} tickets match {code!r}; use `fieldkit checkin search` to find the one")
    try:
        result = manual_admit(ctx.db, ctx.ledger, _rules(), rows[0]["ticket_key"], reason, by="cli",
                              identifiers=parse_checks(checks))
    except CheckinError as e:
        click.secho(f"refused: {e}", fg="red", err=True)
        sys.exit(REFUSED_EXIT)
    click.echo(f"{result['verdict'].upper()}  {result['reason']}  ({rows[0]['name']}, scan {result['seq']},"
               f" {result['method'].replace('_', ' ')})")
    sys.exit(0 if result["admitted"] else REFUSED_EXIT)


@checkin.command("undo")
@click.argument("seq", type=int)
@click.option("--reason", required=True, help="Why the admission was a mistake.")
def undo_cmd(seq: int, reason: str) -> None:
    """Undo a mistaken admission by its scan number (shown on the door screen and in `fieldkit ledger tail`).

    \b
    Example:
      fieldkit checkin undo 42 --reason "scanned the wrong phone"
    """
    from checkin.scans import CheckinError, undo_scan

    ctx = cli_context()
    try:
        undo_scan(ctx.db, ctx.ledger, seq, reason, by="cli")
    except CheckinError as e:
        raise click.UsageError(str(e)) from None
    click.echo(f"scan {seq} undone; the ticket can be admitted again")


@checkin.command("rehearsal")
@click.argument("state", type=click.Choice(["on", "off"]))
def rehearsal_cmd(state: str) -> None:
    """Switch the door's rehearsal mode: practice scans stay out of counts and reports.

    \b
    Example:
      fieldkit checkin rehearsal on
    """
    from checkin.scans import set_mode

    ctx = cli_context()
    set_mode(ctx.db, ctx.ledger, rehearsal=state == "on", by="cli")
    click.echo(f"rehearsal {state}")


@checkin.command("direction")
@click.argument("direction", type=click.Choice(["entry", "exit"]))
def direction_cmd(direction: str) -> None:
    """Make this door scan entries or exits.

    \b
    Example:
      fieldkit checkin direction exit
    """
    from checkin.scans import CheckinError, set_mode

    ctx = cli_context()
    if direction == "exit" and not ctx.config["checkin.exit_scans"]:
        raise click.UsageError("this door does not take exit scans (checkin.exit_scans = false)")
    try:
        set_mode(ctx.db, ctx.ledger, direction=direction, by="cli")
    except CheckinError as e:
        raise click.UsageError(str(e)) from None
    click.echo(f"door scans {direction}s")


@checkin.command("guestlist")
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True, help="HTML file to write (print it).")
def guestlist_cmd(out: str) -> None:
    """Write the paper backup: every guest sorted by last name, with type and code.

    \b
    Example:
      fieldkit checkin guestlist --out guestlist.html
    """
    from checkin.guestlist import guestlist_html

    config = get_config()
    ctx = cli_context()
    Path(out).write_text(guestlist_html(ctx.db.conn, config["kit.event"], config.tz, config.kit_id), encoding="utf-8")
    n = ctx.db.scalar("SELECT COUNT(*) FROM checkin_tickets WHERE source != 'rehearsal'")
    click.echo(f"wrote {out} ({n} guests); open it in a browser and print")


@checkin.command("rehearsal-sheet")
@click.option("--out", type=click.Path(dir_okay=False), help="HTML file to write.")
@click.option("--print", "to_printer", is_flag=True, help="Also print it on the receipt printer (POS print queue).")
def rehearsal_sheet_cmd(out: str | None, to_printer: bool) -> None:
    """Practice tickets that produce every verdict, for staff to drill in rehearsal mode.

    \b
    Example:
      fieldkit checkin rehearsal-sheet --out practice.html --print
    """
    from checkin.rehearsal import practice_tickets, sheet_html, sheet_print_job
    from kit import topics

    if not out and not to_printer:
        raise click.UsageError("give --out FILE, --print, or both")
    config = get_config()
    ctx = cli_context()
    rules = _rules()
    with ctx.db.transaction() as conn:
        sheet = practice_tickets(conn, config.secrets_dir, rules)
    if out:
        Path(out).write_text(sheet_html(sheet, rules.door), encoding="utf-8")
        click.echo(f"wrote {out} ({len(sheet)} practice tickets)")
    if to_printer:
        job = sheet_print_job(sheet, rules.door, uuid.uuid4().hex)
        if not _publish(config, topics.cmd(config.kit_id, *topics.POS_PRINT), job):
            raise click.ClickException("no MQTT broker answers, so the printer cannot be reached; print the HTML instead")
        click.echo("sent to the receipt printer's queue")


@checkin.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def stats_cmd(as_json: bool) -> None:
    """Counts: in / expected, by type, refused, double admissions.

    \b
    Example:
      fieldkit checkin stats --json
    """
    from checkin.stats import stats

    result = stats(cli_context().db.conn, _rules())
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    click.echo(f"{result['door']}: {result['in']} of {result['expected']} in, {result['refused']} refused")
    m = result["by_method"]
    click.echo(f"  admitted by scan {m['scan']}, second check {m['second_check']}, lead {m['lead_override']}")
    for t in result["by_type"]:
        click.echo(f"  {t['type']:<24} {t['in']:>6} / {t['expected']}")
    for d in result["double_admissions"]:
        click.secho(f"  DOUBLE ADMISSION {d['name'] or d['ticket_key'][:20]}: {d['first']['door']} {d['first']['time']}"
                    f" and {d['second']['door']} {d['second']['time']}", fg="yellow")


@checkin.command("search")
@click.argument("text")
def search_cmd(text: str) -> None:
    """Find guests by name, e-mail or order code.

    \b
    Example:
      fieldkit checkin search "anna sm"
    """
    from checkin.search import search_tickets

    for r in search_tickets(cli_context().db.conn, _rules(), text):
        state = f"IN {r['checked_in']}" if r["inside"] else ("" if r["status"] == "valid" else r["status"].upper())
        click.echo(f"{r['order_code']:<12} {r['name']:<30} {r['ticket_type']:<16} {r['email']:<30} {state}")


@checkin.command("bridge-conf")
@click.option("--hub", required=True, help="The hub kit's broker as HOST or HOST:PORT.")
@click.option("--username", default="", help="MQTT user on the hub's broker.")
@click.option("--password", default="", help="MQTT password on the hub's broker.")
def bridge_conf_cmd(hub: str, username: str, password: str) -> None:
    """Print the Mosquitto bridge lines that share this kit's check-ins with the site's hub kit.

    \b
    Example:
      fieldkit checkin bridge-conf --hub 10.42.0.1:1883 > /etc/mosquitto/conf.d/fieldkit-site.conf
    """
    from checkin.peers import bridge_conf

    config = get_config()
    host, _, port = hub.partition(":")
    click.echo(bridge_conf(config.site, config.kit_id, host, int(port or 1883), username, password), nl=False)


# reissue, revoke, lift (checkin/fallback_cli.py): registered here so `fieldkit checkin --help` lists them
from checkin.fallback_cli import register as _register_fallbacks  # noqa: E402

_register_fallbacks(checkin)
