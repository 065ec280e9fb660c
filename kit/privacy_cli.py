"""``fieldkit privacy status|erase`` and ``fieldkit ledger truncate`` (kit/privacy.py does the work)."""

from __future__ import annotations

import json
import sys

import click

from kit.cli import get_config, get_db


def _ledger(config):
    from kit.clock import KitClock
    from kit.ledger import Ledger

    clock = KitClock(config.data_dir, config["kit.clock_assume_synced"], config["kit.clock_method"])
    return Ledger(config.kit_id, clock, config["site.max_clock_ahead_seconds"])


def _hooks():
    from kit.features import load_features
    from kit.privacy import hooks_from

    return hooks_from(load_features())


@click.group("privacy")
def privacy() -> None:
    """Attendees' personal data on this kit: what it holds, and erasing it once HQ holds it.

    \b
    Example:
      fieldkit privacy status
    """


@privacy.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def privacy_status(as_json: bool) -> None:
    """What personal data the kit holds, where, and when it will be erased.

    \b
    Example:
      fieldkit privacy status --json
    """
    from kit.privacy import status

    state = status(get_db(), get_config(), _hooks())
    if as_json:
        click.echo(json.dumps(state, indent=2, default=str))
        return
    click.echo(state["message"])
    for place in state["holds"]:
        click.echo(f"  {place['feature']:<8} {place['count']:>7}  {place['what']}")
    hq = state["hq"]
    held = (
        "not joined to an HQ"
        if not hq["joined"]
        else (
            "HQ holds every event and personal record"
            if hq["all_held"]
            else f"HQ lacks {hq['events_waiting']} events and {hq['signups_waiting']} personal records"
        )
    )
    click.echo(
        f"event ends: {state['event_ends'] or '(kit.event_ends not set)'}; erased "
        f"{state['erase_after_hours']} h later ({state['due_at'] or 'no date'}); {held}"
    )
    if state["last_erasure"]:
        done = state["last_erasure"]
        click.echo(
            f"last erasure: {done['at_text']}{' (forced)' if done['forced'] else ''}, ledger seq {done['event_seq']}"
        )


@privacy.command("erase")
@click.option(
    "--now",
    "force",
    is_flag=True,
    help="Erase at once, even before HQ holds everything (what HQ lacks is lost).",
)
@click.option("--reason", default="", help="Why (kept in the ledger with the erasure).")
def privacy_erase(force: bool, reason: str) -> None:
    """Erase attendees' personal data everywhere the kit keeps it (HQ must hold everything, or --now).

    Names, e-mails, phones and answers go; ticket keys, types and admissions stay, so the door still
    refuses a used ticket. The erasure is a ledger event saying what went and how many rows.

    \b
    Example:
      fieldkit privacy erase --now --reason "event over, HQ confirmed by phone"
    """
    from kit.privacy import ErasureRefused, erase

    config = get_config()
    try:
        result = erase(
            get_db(),
            config,
            _ledger(config),
            _hooks(),
            forced=force,
            reason=reason or ("forced with --now" if force else "by hand"),
        )
    except ErasureRefused as e:
        click.secho(f"refused: {e}", fg="red", err=True)
        sys.exit(1)
    for feature, items in result["erased"].items():
        for what, n in items.items():
            click.echo(f"erased {n:>7}  {feature}: {what}")
    if not result["erased"]:
        click.echo("nothing to erase: the kit held no personal data")
    click.echo(
        f"ledger seq {result['event_seq']}: erasure recorded; {result['truncated']} earlier events truncated"
    )
    if not result["hq_held_everything"]:
        click.echo("events HQ does not hold yet stay in the ledger; they are truncated once HQ has them")


@click.command("truncate")
@click.option(
    "--through", type=int, help="Delete up to this seq (at most what HQ holds); default: ledger.keep_days."
)
def ledger_truncate(through: int | None) -> None:
    """Delete old events HQ holds from this kit, keeping a checkpoint `ledger verify` starts from.

    \b
    Example:
      fieldkit ledger truncate --through 5000
    """
    from kit import ledger as ledger_mod
    from kit.privacy import acknowledged_seq, truncate_old

    config, db, hooks = get_config(), get_db(), _hooks()
    if through is None:
        n = truncate_old(db, config, _ledger(config), hooks)
    else:
        acked = acknowledged_seq(db, config, hooks)
        if acked is None or through > acked:
            held = "this kit is not joined to an HQ" if acked is None else f"HQ holds only up to seq {acked}"
            click.secho(f"refused: {held}; only events HQ holds may be deleted", fg="red", err=True)
            sys.exit(1)
        try:
            n = ledger_mod.truncate(db, _ledger(config), through, "by hand (fieldkit ledger truncate)")
        except ValueError as e:
            click.secho(f"refused: {e}", fg="red", err=True)
            sys.exit(1)
    cp = ledger_mod.checkpoint(db.conn)
    click.echo(f"deleted {n} events; the ledger starts after seq {cp.seq if cp else 0}")
