"""``fieldkit hq privacy status|set|erase``: HQ's retention of personal data per site (sync/hq/retention.py)."""

from __future__ import annotations

import json
import sys
from datetime import datetime

import click

from kit.cli import get_config

db_option = click.option(
    "--db", "db_url", help="HQ database URL (default: hq.database_url, else hq.db in the data dir)."
)


def _engine(db_url):
    from sync.hq.cli import hq_engine

    return hq_engine(db_url)


def _refuse(e: Exception) -> None:
    click.secho(f"refused: {e}", fg="red", err=True)
    sys.exit(1)


@click.group("privacy")
def hq_privacy_group() -> None:
    """Personal records at HQ (signups): how long each site keeps them, and erasing them.

    \b
    Example:
      fieldkit hq privacy status
    """


@hq_privacy_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@db_option
def hq_privacy_status(as_json: bool, db_url: str | None) -> None:
    """Per site: personal records held, the retention rule, how many are due, the last erasure.

    \b
    Example:
      fieldkit hq privacy status --json
    """
    from sync.hq.retention import status

    rows = status(_engine(db_url), get_config()["hq.personal_keep_days"])
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        last = r["last_erasure"]
        click.echo(
            f"{r['site']:<16} held {r['held']:>6}  due {r['due']:>6}  {r['rule']}"
            f"{'  last erased ' + last['at'] + ' (' + str(last['records']) + ')' if last else ''}"
        )


@hq_privacy_group.command("set")
@click.argument("site")
@click.option(
    "--erase-after",
    help="Erase every personal record of the site's kits from this date/time (UTC), e.g. 2026-12-01.",
)
@click.option("--keep-days", type=float, help="Or: erase each record this many days after it arrived.")
@db_option
def hq_privacy_set(site: str, erase_after: str | None, keep_days: float | None, db_url: str | None) -> None:
    """Set a site's retention rule for personal data at HQ.

    \b
    Example:
      fieldkit hq privacy set market --erase-after 2026-12-01
    """
    from datetime import UTC

    from sync.hq.retention import RetentionError, set_rule

    when = None
    if erase_after:
        try:
            when = datetime.fromisoformat(erase_after)
        except ValueError:
            _refuse(ValueError(f"{erase_after!r} is not a date (use 2026-12-01 or 2026-12-01T18:00)"))
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
    try:
        set_rule(_engine(db_url), site, erase_after=when, keep_days=keep_days)
    except RetentionError as e:
        _refuse(e)
    click.echo(
        f"site {site}: "
        + (
            f"personal records erased after {when.isoformat()}"
            if when
            else f"personal records kept {keep_days:g} days"
        )
    )


@hq_privacy_group.command("erase")
@click.option("--site", help="Only this site.")
@click.option("--now", "force", is_flag=True, help="Erase every personal record of --site now, due or not.")
@db_option
def hq_privacy_erase(site: str | None, force: bool, db_url: str | None) -> None:
    """Delete the personal records that are due under each site's rule (run it daily from a timer).

    \b
    Example:
      fieldkit hq privacy erase
      fieldkit hq privacy erase --site market --now
    """
    from sync.hq.retention import RetentionError, erase

    try:
        done = erase(_engine(db_url), get_config()["hq.personal_keep_days"], site=site, force=force)
    except RetentionError as e:
        _refuse(e)
    for name, n in done.items():
        click.echo(f"site {name}: erased {n} personal records")
    if not done:
        click.echo("nothing was due")
