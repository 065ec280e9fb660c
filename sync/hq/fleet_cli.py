"""``fieldkit hq kits list``, ``fieldkit hq bundles ...`` and ``fieldkit hq rollout ...``: the fleet from the shell."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kit.cli import get_config


def print_kits(engine, as_json: bool) -> None:
    from sync.hq.fleet import ago, clock_text, fleet
    from sync.hq.integrity import format_ranges
    from sync.hq.integrity_bulk import kits_integrity
    from sync.hq.store import list_kits

    held = {k["kit"]: k for k in list_kits(engine)}
    kits = fleet(engine)
    every = kits_integrity(engine, [k["kit"] for k in kits])
    out = []
    for k in kits:
        info = every[k["kit"]]
        chain = info["chain"]
        if as_json:
            out.append(
                {
                    **k,
                    "events": info["events"],
                    "hwm": info["hwm"],
                    "missing": info["missing"],
                    "missing_ranges": [list(r) for r in info["missing_ranges"]],
                    "chain_ok": chain.ok,
                    "last_received": str(held[k["kit"]]["last_received"] or "") or None,
                }
            )
            continue
        missing = (
            f"  MISSING {info['missing']} (seq {format_ranges(info['missing_ranges'])})"
            if info["missing"]
            else "  missing none"
        )
        click.echo(
            f"{k['kit']:<20} site {k['site']:<16} events {info['events']:>8}  hwm {info['hwm']:>8}{missing}"
            f"  chain {'ok' if chain.ok else 'BROKEN'}  last {held[k['kit']]['last_received'] or 'never'}"
            f"{'  DISABLED' if k['disabled'] else ''}"
        )
        if not chain.ok:
            for seq, reason in chain.breaks[:5]:
                click.secho(f"    chain broken at seq {seq}: {reason}", fg="red")
        battery = "?" if k["battery_percent"] is None else f"{k['battery_percent']:.0f} %"
        backlog = (
            "?"
            if k["backlog"] is None
            else f"{k['backlog']} (lag {ago(k['lag_seconds']).replace(' ago', '')})"
        )
        click.echo(
            f"    version {k['version'] or '?'}  seen {ago(k['seen_seconds_ago'])}  update "
            f"{k['update']['text'] if k['update'] else 'none'}  backlog {backlog}  battery {battery}"
            f"  clock {clock_text(k)}"
        )
    if as_json:
        click.echo(json.dumps(out, indent=2, default=str))


def _engine(db_url):
    from sync.hq.cli import hq_engine

    return hq_engine(db_url)


db_option = click.option(
    "--db", "db_url", help="HQ database URL (default: hq.database_url, else hq.db in the data dir)."
)


@click.group("bundles")
def bundles_group() -> None:
    """Release bundles HQ offers to kits (kept as files in hq.bundle_dir).

    \b
    Example:
      fieldkit hq bundles add fieldkit-0.3.0-aarch64.fkb --version 0.3.0 --arch aarch64
    """


@bundles_group.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--version", "version", required=True, help="The bundle's version, as in its manifest.")
@click.option("--arch", required=True, help="Its architecture: aarch64 or x86_64.")
@db_option
def bundles_add(file: str, version: str, arch: str, db_url: str | None) -> None:
    """Store FILE as the bundle of VERSION for ARCH (kits verify its signature; HQ only keeps it).

    \b
    Example:
      fieldkit hq bundles add fieldkit-0.3.0-aarch64.fkb --version 0.3.0 --arch aarch64
    """
    from sync.hq.bundles import add_bundle
    from sync.hq.cli import bundle_dir

    row = add_bundle(_engine(db_url), bundle_dir(get_config()), Path(file), version, arch)
    click.echo(f"bundle {version} ({arch}): {row['size']} bytes, sha256 {row['sha256']}")
    click.echo(f"Offer it with:  fieldkit hq rollout start {version} --site SITE")


@bundles_group.command("list")
@db_option
def bundles_list(db_url: str | None) -> None:
    """List stored bundles.

    \b
    Example:
      fieldkit hq bundles list
    """
    from sync.hq.bundles import list_bundles

    for b in list_bundles(_engine(db_url)):
        click.echo(
            f"{b['version']:<12} {b['arch']:<8} {b['size']:>12} bytes  {b['sha256'][:16]}…  added {b['added_at']}"
        )


@click.group("rollout")
def rollout_group() -> None:
    """Offer a bundle site by site, and stop.

    \b
    Example:
      fieldkit hq rollout start 0.3.0 --site market
      fieldkit hq rollout stop 0.3.0
    """


@rollout_group.command("start")
@click.argument("version")
@click.option("--site", required=True, help="The site whose kits are offered VERSION at their next sync.")
@db_option
def rollout_start(version: str, site: str, db_url: str | None) -> None:
    """Offer VERSION to the kits of one site (repeat per site to widen the rollout).

    \b
    Example:
      fieldkit hq rollout start 0.3.0 --site market
    """
    from sync.hq.bundles import start_rollout

    start_rollout(_engine(db_url), version, site)
    click.echo(f"{version} is offered to the kits of site {site} at their next sync.")


@rollout_group.command("stop")
@click.argument("version")
@click.option("--site", help="Only this site (default: every site).")
@db_option
def rollout_stop(version: str, site: str | None, db_url: str | None) -> None:
    """Stop offering VERSION; a download under way is refused from the next range on.

    \b
    Example:
      fieldkit hq rollout stop 0.3.0
    """
    from sync.hq.bundles import stop_rollout

    n = stop_rollout(_engine(db_url), version, site)
    click.echo(f"{version}: stopped for {n} site(s); kits that installed it keep it.")


@rollout_group.command("list")
@db_option
def rollout_list(db_url: str | None) -> None:
    """List rollouts.

    \b
    Example:
      fieldkit hq rollout list
    """
    from sync.hq.bundles import list_rollouts

    for r in list_rollouts(_engine(db_url)):
        state = f"stopped {r['stopped_at']}" if r["stopped_at"] else "active"
        click.echo(f"{r['version']:<12} site {r['site']:<16} started {r['started_at']}  {state}")
