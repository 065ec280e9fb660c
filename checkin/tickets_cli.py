"""``fieldkit tickets ...``: the door's keys, issuing tickets, importing attendee lists (before the doors open)."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click

from checkin.cli import cli_context as _context
from kit.cli import get_config, print_report

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
    from checkin.issue import issue_tickets
    from checkin.keys import load_private_key, newest_private_key
    from kit.localtime import parse_when

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
