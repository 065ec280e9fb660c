"""``fieldkit sync ...``: join an HQ, see the backlog, sync now, telemetry bridge configuration."""

from __future__ import annotations

import json
import sys

import click

from kit.cli import get_config, get_db
from sync.errors import FriendlyGroup


@click.group("sync", cls=FriendlyGroup)
def sync_group() -> None:
    """Upload this kit's ledger to HQ and receive documents from it.

    \b
    Example:
      fieldkit sync join https://hq.example.org fk_door1_...
      fieldkit sync status
    """


@sync_group.command("join")
@click.argument("url")
@click.argument("token")
def sync_join(url: str, token: str) -> None:
    """Point this kit at an HQ: the address goes to fieldkit.toml, the token to the state dir.

    TOKEN is what `fieldkit hq kits add` printed for this kit.

    \b
    Example:
      fieldkit sync join https://hq.example.org fk_door1_Xq3...
    """
    from sync.client import HQClient, SyncError
    from sync.credentials import join

    config = join(get_config(), url, token)
    click.echo(f"Kit '{config.kit_id}' will sync to {config['sync.hq_url']} (token kept in {config.secrets_dir}).")
    client = HQClient(config["sync.hq_url"], token, config.kit_id, 10.0, config["sync.hq_ca_file"])
    try:
        client.health()
        hwm = client.hwm()
        click.secho(f"HQ answers and knows this kit (it holds events up to seq {hwm}).", fg="green")
    except SyncError as e:
        click.secho(f"Saved, but HQ cannot be checked right now: {e}", fg="yellow")
    finally:
        client.close()


def _agent():
    from sync.agent import SyncAgent

    return SyncAgent(get_config(), get_db())


@sync_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
def sync_status(as_json: bool) -> None:
    """Show the HQ address, backlog, last success, last error and parked records.

    \b
    Example:
      fieldkit sync status
    """
    state = _agent().state()
    if as_json:
        click.echo(json.dumps(state, indent=2, default=str))
        return
    if not state["configured"]:
        click.secho("Not joined to an HQ: run `fieldkit sync join URL TOKEN`.", fg="yellow")
    else:
        click.echo(f"HQ:            {state['hq_url']}")
    click.echo(f"Ledger:        {state['last_seq']} events; HQ has acknowledged up to seq {state['cursor']}")
    colour = "green" if state["backlog"] == 0 else "yellow"
    click.secho(f"Backlog:       {state['backlog']} events to upload", fg=colour)
    click.echo(f"Last success:  {state['last_success'] or 'never'}")
    if state["last_error"]:
        click.secho(f"Last error:    {state['last_error']} ({state['last_error_at']})", fg="red")
    if state["parked"]:
        click.secho(f"Parked:        {state['parked']} records HQ refused (see below; `fieldkit sync now --retry-parked`)",
                    fg="red")
        for p in state["parked_records"]:
            click.echo(f"  seq {p['seq']}: {p['error']}")
    for d in state["documents"]:
        click.echo(f"Document:      {d['kind']} v{d['hq_version']} {d['filename']} — {d['result']}")


@sync_group.command("now")
@click.option("--retry-parked", is_flag=True, help="Also send the records HQ refused before.")
@click.option("--wait", default=600.0, show_default=True, help="Seconds to wait if the sync service is mid-session.")
def sync_now(retry_parked: bool, wait: float) -> None:
    """Sync at once, with a progress bar; exit 1 if HQ cannot be reached.

    \b
    Example:
      fieldkit sync now
    """
    from sync.agent import SessionBusy
    from sync.client import SyncError

    agent = _agent()
    if retry_parked:
        click.echo(f"{agent.retry_parked()} parked record(s) will be sent again.")
    bar = {"bar": None}

    def progress(done: int, total: int) -> None:
        if bar["bar"] is None and total:
            bar["bar"] = click.progressbar(length=total, label="Uploading", show_pos=True, file=sys.stderr)
            bar["bar"].__enter__()
        if bar["bar"] is not None:
            bar["bar"].length = max(bar["bar"].length, total)
            bar["bar"].update(done - bar["bar"].pos)

    try:
        try:
            result = agent.run_session(progress=progress)
        except SessionBusy:
            click.echo("The sync service is in the middle of a session; waiting for it to finish…")
            result = agent.run_session(progress=progress, lock_wait=wait)
    except SessionBusy:
        click.secho("error: the sync service kept the session for too long; try again", fg="red", err=True)
        sys.exit(1)
    except SyncError as e:
        click.secho(f"error: {e}", fg="red", err=True)
        click.echo(f"{agent.state()['backlog']} events wait on the kit; nothing is lost.")
        sys.exit(1)
    finally:
        if bar["bar"] is not None:
            bar["bar"].__exit__(None, None, None)
    if result.rewound_from is not None:
        click.secho(f"HQ had lost events after seq {result.cursor - result.uploaded}; they were sent again.", fg="yellow")
    if result.restored_ranges:
        ranges = ", ".join(f"{a}" if a == b else f"{a}–{b}" for a, b in result.restored_ranges[:10])
        more = f" and {len(result.restored_ranges) - 10} more ranges" if len(result.restored_ranges) > 10 else ""
        click.secho(f"HQ was missing seq {ranges}{more}: sent again, {result.restored} restored at HQ.", fg="yellow")
    click.echo(f"Uploaded {result.uploaded} events ({result.stored} new at HQ, {result.duplicate} HQ already had, "
               f"{result.parked} refused and parked).")
    for doc in result.documents:
        click.echo(f"Document {doc['kind']} v{doc['hq_version']}: {doc['result']}")
    state = agent.state()
    if state["backlog"] == 0 and not state["parked"]:
        click.secho("HQ has everything this kit recorded.", fg="green")
    elif state["parked"]:
        click.secho(f"{state['parked']} record(s) HQ refused are parked on the kit: see `fieldkit sync status`.",
                    fg="yellow")


@sync_group.command("bridge-config")
@click.option("--out", type=click.Path(dir_okay=False), help="Write to this file instead of printing.")
def sync_bridge_config(out: str | None) -> None:
    """Print a Mosquitto bridge that forwards power telemetry to HQ's broker (lossy by design).

    \b
    Example:
      fieldkit sync bridge-config --out /etc/mosquitto/conf.d/fieldkit-hq-telemetry.conf
    """
    from pathlib import Path

    from sync.bridge import telemetry_bridge_conf

    text = telemetry_bridge_conf(get_config())
    if out:
        Path(out).write_text(text)
        click.echo(f"wrote {out}; restart mosquitto to apply it")
    else:
        click.echo(text, nl=False)
