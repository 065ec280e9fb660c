"""``fieldkit cues ...``: list the cue sheet, fire a cue, stop everything, check a sheet file.

fire / go / stop-all go over the bus to the cues service (it owns the lights and the sound), so they
work the same from a laptop on the kit's network as from the kit itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click


def _config():
    from kit.cli import get_config

    return get_config()


def _ask(command: str, payload: dict) -> None:
    from kit.bus import Bus

    bus = Bus.from_config(_config(), "cli", will=False)
    try:
        if not bus.start(wait=5):
            click.secho("error: the kit's MQTT broker does not answer (is the kit running? `fieldkit doctor`)",
                        fg="red", err=True)
            sys.exit(1)
        answer = bus.request("cues", command, {**payload, "by": "cli"}, timeout=5)
    finally:
        bus.stop(clean=False)
    if answer is None:
        click.secho("error: the cues service did not answer (start it: `fieldkit run cues` or `fieldkit up`)",
                    fg="red", err=True)
        sys.exit(1)
    if not answer.get("ok"):
        click.secho(f"error: {answer.get('error')}", fg="red", err=True)
        sys.exit(1)
    click.echo(answer.get("message", "done"))


@click.group("cues")
def cues_group() -> None:
    """Light and sound cues: the cue list, firing cues, STOP ALL.

    \b
    Example:
      fieldkit cues list
      fieldkit cues fire preshow
    """


@cues_group.command("list")
def cues_list() -> None:
    """Show the current cue sheet: the GO list in order, then the cues triggers run.

    \b
    Example:
      fieldkit cues list
    """
    from cues.documents import load_current_sheet
    from kit.cli import get_db

    sheet, version = load_current_sheet(get_db())
    if sheet is None:
        click.echo("No cue sheet imported yet: fieldkit documents import cues.sheet my-sheet.toml")
        return
    click.echo(f"{sheet.name} (v{version})")
    for cue in sheet.cues:
        where = f"{cue.number:>3}" if cue.in_list else "  -"
        triggers = ", ".join(t.kind if t.kind != "sensor" else f"sensor {t.sensor}" for t in cue.triggers) or "GO"
        click.echo(f"{where}  {cue.name:<16} {cue.title}  [{triggers}]")


@cues_group.command("fire")
@click.argument("name")
def cues_fire(name: str) -> None:
    """Fire the cue NAME now (a lead's command: cooldowns and conditions do not apply).

    \b
    Example:
      fieldkit cues fire sting-100
    """
    _ask("fire", {"cue": name})


@cues_group.command("go")
def cues_go() -> None:
    """GO: fire the cue standing by in the cue list and move to the next.

    \b
    Example:
      fieldkit cues go
    """
    _ask("go", {})


@cues_group.command("stop-all")
def cues_stop_all() -> None:
    """Stop every running cue and all sound at once.

    \b
    Example:
      fieldkit cues stop-all
    """
    _ask("stop_all", {})


@cues_group.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def cues_check(file: str) -> None:
    """Validate a cue sheet file without importing it; errors name the line.

    \b
    Example:
      fieldkit cues check my-sheet.toml
    """
    from cues.sheet import SheetError, parse_sheet

    try:
        sheet = parse_sheet(Path(file).read_bytes(), Path(file).name)
    except SheetError as e:
        click.secho(f"error: {e}", fg="red", err=True)
        sys.exit(1)
    click.echo(f"OK {sheet.name}: {len(sheet.cues)} cues ({len(sheet.cue_list)} in the GO list)")
