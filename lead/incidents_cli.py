"""``fieldkit incident ...``: log, list, acknowledge and resolve the site's incidents from a shell.

The same domain functions as the Incident form and the lead's board (lead/incidents.py); what is
written here reaches the site's other kits through the lead service's site link, and HQ with the sync.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime

import click

from kit.cli import get_config, get_db

log = logging.getLogger("fieldkit.lead")


def _ledger(config):
    from kit.clock import KitClock
    from kit.ledger import Ledger

    clock = KitClock(config.data_dir, config["kit.clock_assume_synced"], config["kit.clock_method"])
    return Ledger(config.kit_id, clock, config["site.max_clock_ahead_seconds"])


def _refused(e: Exception, what: str) -> None:
    log.warning("event=incident_refused action=%s reason=%r", what, str(e))
    click.secho(f"error: {e}", fg="red", err=True)
    sys.exit(1)


def _write(what: str, fn):
    from lead.incidents import IncidentError

    config = get_config()
    try:
        with get_db().transaction() as conn:
            return fn(conn, _ledger(config))
    except IncidentError as e:
        _refused(e, what)


def _hm(at: float, tz) -> str:
    return datetime.fromtimestamp(at, tz).strftime("%H:%M")


def _line(i: dict, tz) -> str:
    who = "the kit" if i["auto"] else i["by"]
    out = f"{i['short']}  {i['state'].upper():<12} {_hm(i['at'], tz)}  {i['severity']:<6} {i['category_label']:<13}" \
          f" {i['note'] or '(note erased)'}"
    out += f"  [concerns {i['concerns']}]" if i["concerns"] else ""
    out += f"\n          logged by {who} at {i['kit']}"
    for action in ("acknowledged", "resolved"):
        a = i[action]
        if a:
            out += f"; {action} {_hm(a['at'], tz)} by {a['by']} at {a['kit']}" + (f" ({a['note']})" if a["note"] else "")
    return out


@click.group("incident")
def incident() -> None:
    """The site's incident log: anyone logs one, a lead acknowledges and resolves it; every kit shows it.

    \b
    Categories: access, safety, medical, lost_property, tech, payment, other; severities: low, medium, high.
    Example:
      fieldkit incident add safety high "Barrier at gate 2 is broken"
      fieldkit incident list
      fieldkit incident ack 3f2a9c1e
      fieldkit incident resolve 3f2a9c1e --note "Taped off, security told"
    """


@incident.command("add")
@click.argument("category")
@click.argument("severity")
@click.argument("note")
@click.option("--concerns", default="", help="The ticket or receipt it is about.")
@click.option("--by", default="cli", show_default=True, help="Who logs it (a role or a name).")
def add_cmd(category: str, severity: str, note: str, concerns: str, by: str) -> None:
    """Log an incident: CATEGORY, SEVERITY and a NOTE saying what happened.

    \b
    Example:
      fieldkit incident add lost_property low "Blue scarf found at the bar" --by merch
      fieldkit incident add access medium "Guest says code was screenshotted" --concerns ORD-4471
    """
    from lead.incidents import log_incident

    made = _write("add", lambda conn, ledger: log_incident(conn, ledger, category=category, severity=severity,
                                                           note=note, concerns=concerns, by=by))
    click.echo(f"logged incident {made['short']} ({made['category_label']}, {made['severity']})")


@incident.command("list")
@click.option("--state", type=click.Choice(["open", "acknowledged", "resolved"]), help="Only incidents in this state.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_cmd(state: str | None, as_json: bool) -> None:
    """The site's incidents (this kit's and the other kits'), open ones first, with who did what and when.

    \b
    Example:
      fieldkit incident list --state open
      fieldkit incident list --json
    """
    from lead.incidents import list_incidents

    config = get_config()
    rows = list_incidents(get_db().conn, state)
    if as_json:
        click.echo(json.dumps({"incidents": rows}, indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("no incidents" + (f" {state}" if state else ""))
        return
    for i in rows:
        click.echo(_line(i, config.tz))


@incident.command("ack")
@click.argument("incident_id")
@click.option("--by", default="cli", show_default=True, help="Who takes it on.")
def ack_cmd(incident_id: str, by: str) -> None:
    """Acknowledge incident INCIDENT_ID (its first 8 characters are enough): a lead has taken it on.

    \b
    Example:
      fieldkit incident ack 3f2a9c1e --by lead
    """
    from lead.incidents import acknowledge

    done = _write("ack", lambda conn, ledger: acknowledge(conn, ledger, incident_id, by=by))
    click.echo(f"incident {done['short']} acknowledged")


@incident.command("resolve")
@click.argument("incident_id")
@click.option("--note", default="", help="How it was resolved.")
@click.option("--by", default="cli", show_default=True, help="Who resolved it.")
def resolve_cmd(incident_id: str, note: str, by: str) -> None:
    """Resolve incident INCIDENT_ID, with a line on how.

    \b
    Example:
      fieldkit incident resolve 3f2a9c1e --note "Scarf collected by its owner"
    """
    from lead.incidents import resolve

    done = _write("resolve", lambda conn, ledger: resolve(conn, ledger, incident_id, by=by, note=note))
    click.echo(f"incident {done['short']} resolved")
