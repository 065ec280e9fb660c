"""``fieldkit db`` and ``fieldkit ledger``: the kit's database and its append-only event ledger."""

from __future__ import annotations

import sys

import click

from kit.cli import get_config, get_db


@click.group("db")
def db_group() -> None:
    """The kit's database.

    \b
    Example:
      fieldkit db migrate
    """


@db_group.command("migrate")
def db_migrate() -> None:
    """Apply every feature's pending migrations. Idempotent; refuses while services run.

    \b
    Example:
      fieldkit db migrate
    """
    from kit.db import DatabaseLock, apply_migrations
    from kit.features import all_migration_sets

    config = get_config()
    lock = DatabaseLock(config.db_path)
    lock.exclusive()
    try:
        applied = apply_migrations(get_db(), all_migration_sets())
    finally:
        lock.release()
    for set_name, name in applied:
        click.echo(f"applied {set_name}/{name}")
    click.echo(f"{len(applied)} migration(s) applied; the database is up to date.")


@click.group("ledger")
def ledger_group() -> None:
    """The append-only event ledger (audit log and sync outbox).

    \b
    Example:
      fieldkit ledger verify
    """


@ledger_group.command("verify")
def ledger_verify() -> None:
    """Check the ledger: gapless seq, unique ids, parseable payloads, intact hash chain.

    \b
    Example:
      fieldkit ledger verify
    """
    from kit.ledger import checkpoint, verify

    db = get_db()
    count, problems = verify(db)
    for p in problems:
        click.secho(f"FAIL {p}", fg="red")
    if problems:
        sys.exit(1)
    cp = checkpoint(db.conn)
    since = f", from the checkpoint at seq {cp.seq} (earlier events truncated, held by HQ)" if cp else ""
    click.echo(f"OK {count} events, seq gapless, ids unique, hash chain intact{since}")


@ledger_group.command("rebuild")
def ledger_rebuild() -> None:
    """Recreate every feature's tables from the ledger. Refuses while services run.

    \b
    Example:
      fieldkit ledger rebuild
    """
    from kit.features import load_features
    from kit.ledger import LedgerTruncated, rebuild

    try:
        replayed = rebuild(get_db(), load_features())
    except LedgerTruncated as e:
        click.secho(f"refused: {e}", fg="red", err=True)
        sys.exit(1)
    for name, n in replayed.items():
        click.echo(f"{name}: replayed {n} events")


@ledger_group.command("tail")
@click.option("-n", "count", default=20, show_default=True, help="How many events.")
def ledger_tail(count: int) -> None:
    """Show the newest events.

    \b
    Example:
      fieldkit ledger tail -n 5
    """
    from kit.clock import hlc_to_text
    from kit.event_codec import unpack

    for row in reversed(get_db().query("SELECT * FROM events ORDER BY seq DESC LIMIT ?", (count,))):
        click.echo(f"{row['seq']:>7} {hlc_to_text(row['hlc'])} {row['type']:<24} {unpack(row['payload'])}")
