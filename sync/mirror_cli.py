"""``fieldkit mirror status`` and ``fieldkit restore``: the site mirror from the command line."""

from __future__ import annotations

import json
import sys

import click

from kit.cli import get_config, get_db
from sync.errors import FriendlyGroup


@click.group("mirror", cls=FriendlyGroup)
def mirror_group() -> None:
    """This kit's ledger on the site's mirrors (the hub, site.mirror_peers), and the hub's copies of the others.

    \b
    Example:
      fieldkit mirror status
    """


@mirror_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
def mirror_status(as_json: bool) -> None:
    """Per mirror: the seq it holds of this kit and how far it lags; on a mirror, the kits it holds.

    \b
    Example:
      fieldkit mirror status --json
    """
    from sync.mirror import mirror_state
    from sync.mirror_hub import mirror_url
    from sync.mirror_proto import is_mirror

    config = get_config()
    state = mirror_state(get_db())
    if is_mirror(config):
        from sync.hq import store

        engine = store.make_engine(mirror_url(config))
        store.create_schema(engine)
        state["holds"] = [{"kit": r["kit"], "events": int(r["events"] or 0), "upto": int(r["hwm"] or 0)}
                          for r in store.list_kits(engine)]
        engine.dispose()
    if as_json:
        click.echo(json.dumps(state, indent=2, default=str))
        return
    if state["hold"]:
        click.secho(f"NOT RECORDING: {state['hold']}", fg="red")
    click.echo(f"Ledger: {state['last_seq']} events")
    if not state["mirrors"]:
        click.secho("No mirror has acknowledged this kit's events yet (no hub on the site link?).", fg="yellow")
    for m in state["mirrors"]:
        colour = "green" if m["behind"] == 0 else "yellow"
        click.secho(f"Mirror {m['mirror']}: holds up to seq {m['upto']}, {m['behind']} behind "
                    f"(lag {m['lag_seconds']:.1f} s)", fg=colour)
    for h in state.get("holds", []):
        click.echo(f"Holds kit {h['kit']}: {h['events']} events, up to seq {h['upto']}")


@click.command("restore")
@click.option("--from-hub", "from_hub", is_flag=True, help="Fetch this kit's ledger from the site's mirror.")
@click.option("--from-usb", "from_usb", type=click.Path(file_okay=False), help="A replica folder (fieldkit-backup).")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for the mirror to answer.")
def restore_command(from_hub: bool, from_usb: str | None, timeout: float) -> None:
    """Replace a dead kit: restore its ledger onto this freshly initialised spare (services stopped).

    Initialise the spare with the dead kit's id first (`fieldkit init --kit-id ID --site SITE`).
    The lead sets PINs again; the HQ token comes from fieldkit.toml or a new `fieldkit sync join`.

    \b
    Example:
      fieldkit restore --from-hub
      fieldkit restore --from-usb /media/fieldkit-usb/fieldkit-backup
    """
    from kit.features import load_features
    from sync.restore import RestoreError, fetch_from_hub, restore

    if bool(from_hub) == bool(from_usb):
        raise click.UsageError("give one of --from-hub or --from-usb PATH")
    config = get_config()
    try:
        if from_hub:
            records, documents, mirror = fetch_from_hub(config, timeout)
            source = f"the mirror on {mirror}"
        else:
            from sync.replica import read_replica

            records, documents = read_replica(from_usb, config.kit_id)
            source = from_usb
        click.echo(f"{len(records)} events of kit {config.kit_id} found on {source}; checking the chain…")
        done = restore(config, get_db(), load_features(), records, source, documents)
    except RestoreError as e:
        click.secho(f"error: {e}", fg="red", err=True)
        sys.exit(1)
    click.secho(f"Restored {done['upto']} events of kit {done['kit']} from {done['source']} (up to seq "
                f"{done['upto']}); the chain verifies.", fg="green" if not done["problems"] else "yellow")
    if done["stopped_at"]:
        click.secho(f"Not restored after seq {done['upto']}: {done['stopped_at']}", fg="yellow")
    for line in done["documents"]:
        click.echo(f"  document {line}")
    for name, n in done["replayed"].items():
        click.echo(f"  {name}: {n} events replayed")
    click.echo("Next: start the kit; it continues the receipts and the seq. PINs are the spare's own (from "
               "`fieldkit init`); the HQ token comes from fieldkit.toml or a new `fieldkit sync join`.")


@mirror_group.command("report")
@click.option("--format", "fmt", type=click.Choice(["text", "csv", "html", "json"]), default="text", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write to this file instead of printing.")
def mirror_report(fmt: str, out: str | None) -> None:
    """On the site's hub: the site's reconciliation from the mirror (HQ's report), with no internet.

    \b
    Example:
      fieldkit mirror report --format csv --out site.csv
    """
    from sync.hq.cli import write_report
    from sync.site_report import site_report

    report = site_report(get_config())
    if report is None:
        raise click.ClickException("this kit keeps no mirror of the site (site.hub, site.mirror_peers)")
    write_report(report, fmt, out)


@click.group("backup", cls=FriendlyGroup)
def backup_group() -> None:
    """The continuous replica on a USB drive (a fieldkit-backup folder) or in backup.path.

    \b
    Example:
      fieldkit backup status
    """


@backup_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
def backup_status(as_json: bool) -> None:
    """Where the replica is, the seq it is complete up to (verified on the drive), its newest snapshot.

    \b
    Example:
      fieldkit backup status --json
    """
    from kit.ledger import last_seq
    from sync.replica import USB_FOLDER, USB_MOUNT, latest_snapshot, scan, target

    config = get_config()
    folder = target(config)
    state: dict = {"path": str(folder or ""), "last_seq": last_seq(get_db())}
    if folder is None or not (folder / "ledger.jsonl").exists():
        state.update(state="absent", upto=0)
    else:
        upto, _, _, problem = scan(folder / "ledger.jsonl", config.kit_id)
        snap = latest_snapshot(folder)
        state.update(state="ok" if not problem else "torn", upto=upto, problem=problem,
                     snapshot=str(snap or ""), behind=max(0, state["last_seq"] - upto))
    if as_json:
        click.echo(json.dumps(state, indent=2))
        return
    if state["state"] == "absent":
        where = config["backup.path"] or f"{USB_MOUNT}/{USB_FOLDER}"
        click.secho(f"No replica: {where} is not there (plug in a USB drive with a {USB_FOLDER} folder).", fg="yellow")
        return
    colour = "green" if state["state"] == "ok" and not state["behind"] else "yellow"
    click.secho(f"Replica {state['path']}: complete up to seq {state['upto']} of {state['last_seq']}", fg=colour)
    if state.get("problem"):
        click.secho(f"  on the drive: {state['problem']} (the kit writes it again)", fg="yellow")
    click.echo(f"Snapshot: {state['snapshot'] or 'none yet'}")
