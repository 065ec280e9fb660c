"""``fieldkit tickets ...`` (keys, issuing, attendee lists) and ``fieldkit checkin ...`` (the door)."""

from __future__ import annotations

import json
import sys
import uuid
from datetime import datetime
from pathlib import Path

import click

from kit.cli import get_config, print_report

REFUSED_EXIT = 2


def _context():
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


# --- fieldkit tickets ------------------------------------------------------------------------------

@click.group("tickets")
def tickets() -> None:
    """Ticket keys, the kit's own signed tickets and attendee lists.

    \b
    Example:
      fieldkit tickets import pretix-checkin-list.csv
    """


@tickets.group("keys")
def keys_group() -> None:
    """Public keys the door verifies signed tickets with.

    \b
    Example:
      fieldkit tickets keys list
    """


@keys_group.command("add")
@click.option("--pretix", "source", required=True,
              help="pretix event JSON file, PEM file, or the base64 key text itself.")
def keys_add(source: str) -> None:
    """Import an event's public keys (pretix_sig1), or a kit key's PEM.

    \b
    Example:
      fieldkit tickets keys add --pretix event.json
      fieldkit tickets keys add --pretix LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0K...
    """
    from checkin.documents import KEYS
    from kit.documents import import_document

    path = Path(source)
    data, name = (path.read_bytes(), path.name) if len(source) < 4096 and path.is_file() else (source.encode(), "keys.txt")
    _, report = import_document(get_config(), _context().db, KEYS, data, name)
    print_report(report)


@keys_group.command("new")
@click.option("--public-out", type=click.Path(dir_okay=False), help="Also write the public key (PEM) here for other doors.")
def keys_new(public_out: str | None) -> None:
    """Make an Ed25519 key pair for issuing the kit's own tickets.

    The private key stays in the kit's secrets dir (mode 0600); door kits only need the public key.

    \b
    Example:
      fieldkit tickets keys new --public-out door-key.pem
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from checkin.keys import add_keys, fingerprint, public_pem, save_private_key

    config = get_config()
    key = Ed25519PrivateKey.generate()
    fp = fingerprint(key.public_key())
    path = save_private_key(config.secrets_dir, key, f"kit-{fp}")
    ctx = _context()
    with ctx.db.transaction() as conn:
        add_keys(conn, [key.public_key()], "kit", "fieldkit tickets keys new")
    if public_out:
        Path(public_out).write_text(public_pem(key.public_key()))
    click.echo(f"new key {fp}; private key kept in {path}")
    click.echo(public_pem(key.public_key()).strip())
    click.echo("On other door kits: fieldkit tickets keys add --pretix <that PEM file>")


@keys_group.command("list")
def keys_list() -> None:
    """List the keys this kit accepts.

    \b
    Example:
      fieldkit tickets keys list
    """
    rows = _context().db.query("SELECT fingerprint, kind, label, added_at FROM checkin_keys ORDER BY id")
    if not rows:
        click.echo("no keys: signed tickets will be refused (fieldkit tickets keys add --pretix FILE)")
    for r in rows:
        when = datetime.fromtimestamp(r["added_at"]).strftime("%Y-%m-%d %H:%M")
        click.echo(f"{r['fingerprint']}  {r['kind']:<9} {when}  {r['label']}")


@tickets.command("issue")
@click.option("--type", "ticket_type", required=True, help="Ticket type name, e.g. 'Day pass'.")
@click.option("--count", type=click.IntRange(1, 100_000), required=True, help="How many tickets.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Folder for PNGs and tickets.csv.")
@click.option("--valid-from", help="First valid time, e.g. 2026-11-24T18:00 (kit time zone).")
@click.option("--valid-until", help="Last valid time, e.g. 2026-11-25T04:00.")
@click.option("--key", "key_file", type=click.Path(exists=True, dir_okay=False), help="Private key PEM (default: newest kit key).")
def issue_cmd(ticket_type: str, count: int, out_dir: str, valid_from: str | None, valid_until: str | None,
              key_file: str | None) -> None:
    """Issue signed tickets: one PNG per ticket (QR + readable code) and a CSV list.

    \b
    Example:
      fieldkit tickets issue --type "Day pass" --count 50 --out tickets/
    """
    from checkin.attendees import parse_when
    from checkin.issue import issue_tickets
    from checkin.keys import load_private_key, newest_private_key

    config = get_config()
    if key_file:
        key = load_private_key(Path(key_file))
    else:
        found = newest_private_key(config.secrets_dir, "kit")
        if not found:
            raise click.UsageError("no issuing key yet: run `fieldkit tickets keys new` first")
        key = found[1]
    try:
        vf = int(parse_when(valid_from, config.tz)) if valid_from else 0
        vu = int(parse_when(valid_until, config.tz, end_of_day=True)) if valid_until else 0
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    ctx = _context()
    with ctx.db.transaction() as conn:
        issued = issue_tickets(conn, key, ticket_type, count, Path(out_dir), event_name=config["kit.event"],
                               valid_from=vf, valid_until=vu)
    click.echo(f"issued {len(issued)} '{ticket_type}' tickets into {out_dir} (PNG each, list in tickets.csv)")
    click.echo(f"first code {issued[0].code}; import the list on door kits: fieldkit tickets import {out_dir}/tickets.csv")


@tickets.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["auto", "pretix", "eventbrite", "tito", "csv"]), default="auto",
              show_default=True, help="Export the file came from.")
@click.option("--dry-run", is_flag=True, help="Show what would change without importing.")
def import_cmd(file: str, fmt: str, dry_run: bool) -> None:
    """Import an attendee list (pretix, Eventbrite, Tito or any CSV with a code column).

    Importing again updates changed rows and never duplicates. Prints rows imported, updated and
    skipped, with the reason for each skipped row.

    \b
    Example:
      fieldkit tickets import attendees.csv --format eventbrite
    """
    from checkin.attendees import importer_for
    from checkin.documents import ATTENDEES, DOCUMENTS
    from kit.documents import DocumentKind, import_document

    base = next(d for d in DOCUMENTS if d.kind == ATTENDEES)
    kinds = {ATTENDEES: DocumentKind(ATTENDEES, base.title, importer_for(fmt), base.accept)}
    data = Path(file).read_bytes()
    with click.progressbar(length=1, label="importing", file=sys.stderr) as bar:
        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        _, report = import_document(get_config(), _context().db, ATTENDEES, data, Path(file).name, dry_run=dry_run,
                                    progress=progress, kinds=kinds)
    print_report(report, dry_run)


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

    ctx = _context()
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
@click.option("--reason", required=True, help="Why by hand, e.g. 'phone dead, ID checked'.")
def admit_cmd(code: str, reason: str) -> None:
    """Admit a guest by hand (dead phone): CODE is the order code or the ticket's code.

    \b
    Example:
      fieldkit checkin admit ABC12 --reason "phone dead, ID checked"
    """
    from checkin.scans import CheckinError, manual_admit

    ctx = _context()
    rows = ctx.db.query("SELECT ticket_key, name FROM checkin_tickets WHERE ticket_key = ? OR order_code = ?"
                        " COLLATE NOCASE", (code, code))
    if len(rows) != 1:
        raise click.UsageError(f"{len(rows)} tickets match {code!r}; use `fieldkit checkin search` to find the one")
    try:
        result = manual_admit(ctx.db, ctx.ledger, _rules(), rows[0]["ticket_key"], reason, by="cli")
    except CheckinError as e:
        raise click.UsageError(str(e)) from None
    click.echo(f"{result['verdict'].upper()}  {result['reason']}  ({rows[0]['name']}, scan {result['seq']})")
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

    ctx = _context()
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

    ctx = _context()
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

    ctx = _context()
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
    ctx = _context()
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
    ctx = _context()
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

    result = stats(_context().db.conn, _rules())
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    click.echo(f"{result['door']}: {result['in']} in of {result['expected']} expected, {result['refused']} refused")
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

    for r in search_tickets(_context().db.conn, _rules(), text):
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
