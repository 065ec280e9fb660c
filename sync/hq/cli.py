"""``fieldkit hq ...``: run HQ, register kits, put documents, import settlements, build the report."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kit.cli import get_config
from sync.errors import FriendlyGroup


def hq_engine(url: str | None = None):
    """The HQ database from --db, else hq.database_url, else hq.db in the data dir; schema ensured."""
    from sync.hq.store import create_schema, make_engine

    config = get_config()
    url = url or config["hq.database_url"] or f"sqlite:///{config.data_dir / 'hq.db'}"
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    create_schema(engine)
    return engine


def bundle_dir(config) -> Path:
    """Where HQ keeps release bundles: hq.bundle_dir, else bundles/ in the data dir."""
    return Path(config["hq.bundle_dir"] or config.data_dir / "bundles")


db_option = click.option("--db", "db_url", help="HQ database URL (default: hq.database_url, else hq.db in the data dir).")


@click.group("hq", cls=FriendlyGroup)
def hq_group() -> None:
    """HQ: receive every kit's events, hand out documents, reconcile across kits.

    \b
    Example:
      fieldkit hq kits add door1 --site market
      fieldkit hq serve --db postgresql://fieldkit@localhost/hq
    """


@hq_group.command("serve")
@db_option
@click.option("--host", help="Listen address (default: hq.host).")
@click.option("--port", type=int, help="Port (default: hq.port).")
def hq_serve(db_url: str | None, host: str | None, port: int | None) -> None:
    """Run the HQ web service with waitress (stateless: run several over one PostgreSQL).

    \b
    Example:
      fieldkit hq serve --db postgresql://fieldkit@localhost/hq --port 8090
    """
    import waitress

    from kit.logs import setup_logging
    from sync.hq.app import create_app
    from sync.hq.store import HQError
    from sync.hq.throttle import parse_networks

    config = get_config()
    setup_logging(config["service.log_level"], "hq")
    try:
        parse_networks(config["hq.trusted_proxies"])
    except ValueError as e:
        raise HQError(str(e)) from None
    app = create_app(hq_engine(db_url), max_body_bytes=int(config["hq.max_body_mb"]) * 1024 * 1024,
                     card_match_minutes=config["hq.card_match_minutes"], tz=config["kit.timezone"],
                     trusted_proxies=list(config["hq.trusted_proxies"]), bundle_dir=str(bundle_dir(config)))
    host, port = host or config["hq.host"], port or config["hq.port"]
    click.echo(f"HQ listening on http://{host}:{port}")
    # HQ itself decides whom to believe about X-Forwarded-For (hq.trusted_proxies, CIDR lists), so
    # waitress must hand the header through instead of dropping it.
    waitress.serve(app, host=host, port=port, threads=config["hq.threads"], ident="fieldkit-hq",
                   max_request_body_size=int(config["hq.max_body_mb"]) * 1024 * 1024 + 1,
                   clear_untrusted_proxy_headers=False)


@hq_group.group("kits")
def kits_group() -> None:
    """Kits allowed to report to this HQ.

    \b
    Example:
      fieldkit hq kits list
    """


@kits_group.command("add")
@click.argument("kit")
@click.option("--site", required=True, help="The site the kit belongs to.")
@click.option("--replace", is_flag=True, help="Issue a new token for a kit that exists (the old one stops working).")
@click.option("--relay", is_flag=True, help="A site's hub: its token may also upload the events of its site's kits.")
@db_option
def kits_add(kit: str, site: str, replace: bool, relay: bool, db_url: str | None) -> None:
    """Register KIT and print its token (shown once; HQ keeps only a hash).

    \b
    Example:
      fieldkit hq kits add door1 --site market
      fieldkit hq kits add hub1 --site market --relay
    """
    from sync.hq.store import add_kit

    engine = hq_engine(db_url)
    token = add_kit(engine, kit, site, replace=replace)
    if relay:  # sync/hq/relay.py: one uplink for the whole site
        from sync.hq.relay import allow_relay

        allow_relay(engine, kit, site)
        click.echo(f"Kit '{kit}' may relay the events of the other kits of site '{site}'.")
    click.echo(f"Kit '{kit}' at site '{site}'. Its token (shown once):")
    click.secho(f"  {token}", bold=True)
    click.echo(f"On the kit:  fieldkit sync join https://<this HQ> {token}")


@kits_group.command("disable")
@click.argument("kit")
@click.option("--enable", is_flag=True, help="Let the kit report again.")
@db_option
def kits_disable(kit: str, enable: bool, db_url: str | None) -> None:
    """Stop accepting KIT's token (a lost or stolen kit); what it uploaded before stays.

    \b
    Example:
      fieldkit hq kits disable door3
    """
    from sync.hq.store import set_kit_disabled

    set_kit_disabled(hq_engine(db_url), kit, disabled=not enable)
    click.echo(f"Kit '{kit}' {'may report again' if enable else 'is disabled: HQ refuses its token'}.")


@kits_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the fleet as JSON (one object per kit).")
@db_option
def kits_list(as_json: bool, db_url: str | None) -> None:
    """List kits: events held, mark, missing seqs, hash chain; version, last seen, last update, battery, clock.

    \b
    Example:
      fieldkit hq kits list
      fieldkit hq kits list --json
    """
    from sync.hq.fleet_cli import print_kits

    print_kits(hq_engine(db_url), as_json)


@hq_group.group("documents")
def hq_documents_group() -> None:
    """Documents HQ hands to kits (ticket lists, keys, catalogue, stock, pickups, cue sheets).

    \b
    Example:
      fieldkit hq documents list
    """


@hq_documents_group.command("put")
@click.argument("kind")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--site", help="Only for the kits of this site.")
@click.option("--kit", help="Only for this kit.")
@db_option
def documents_put(kind: str, file: str, site: str | None, kit: str | None, db_url: str | None) -> None:
    """Store a new version of a KIND document for every kit, a site or one kit.

    Kits pick it up at their next sync and apply it with the owning feature's importer.

    \b
    Example:
      fieldkit hq documents put pos.catalogue catalogue.csv --site market
    """
    from kit.documents import document_kinds
    from sync.hq.documents import put_document

    kinds = document_kinds()
    if kind not in kinds:
        click.secho(f"note: no feature of this version imports {kind!r} (known: {', '.join(sorted(kinds)) or 'none'}); "
                    "kits will store it without applying it", fg="yellow")
    row = put_document(hq_engine(db_url), kind, Path(file).read_bytes(), Path(file).name, site=site, kit=kit)
    where = {"all": "every kit", "site": f"site {site}", "kit": f"kit {kit}"}[row["scope"]]
    click.echo(f"{kind} version {row['version']} for {where} ({row['size']} bytes, id {row['id']})")


@hq_documents_group.command("list")
@db_option
def documents_list(db_url: str | None) -> None:
    """List every stored document version.

    \b
    Example:
      fieldkit hq documents list
    """
    from sync.hq.documents import list_documents

    for d in list_documents(hq_engine(db_url)):
        scope = d["scope"] + (f":{d['scope_value']}" if d["scope_value"] else "")
        click.echo(f"{d['id']:>5} {d['kind']:<22} {scope:<18} v{d['version']:<4} {d['filename']} ({d['size']} bytes)")


@hq_group.group("settlements")
def settlements_group() -> None:
    """Card-terminal settlement exports, matched against card payments in the report.

    \b
    Example:
      fieldkit hq settlements import sumup-2026-11-23.csv
    """


@settlements_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@db_option
def settlements_import(file: str, db_url: str | None) -> None:
    """Import a card terminal's settlement CSV (importing the same file again replaces it).

    \b
    Example:
      fieldkit hq settlements import settlement.csv
    """
    from sync.hq.settlements import import_settlements

    report = import_settlements(hq_engine(db_url), Path(file).read_bytes(), Path(file).name)
    click.echo(f"{report['imported']} settlement lines imported from {Path(file).name}")
    for line, reason in report["skipped"][:50]:
        click.echo(f"  line {line}: skipped, {reason}")


@hq_group.group("admins")
def admins_group() -> None:
    """Organisers who may open the report in a browser.

    \b
    Example:
      fieldkit hq admins add alice
    """


@admins_group.command("add")
@click.argument("name")
@db_option
def admins_add(name: str, db_url: str | None) -> None:
    """Create (or replace) NAME's report token; sign in with any user name and the token as password.

    \b
    Example:
      fieldkit hq admins add alice
    """
    from sync.hq.store import add_admin

    token = add_admin(hq_engine(db_url), name)
    click.echo(f"Report token for {name} (shown once):")
    click.secho(f"  {token}", bold=True)


@hq_group.command("report")
@click.option("--site", help="Only this site's kits.")
@click.option("--from", "since", help="Only events from this date or time (kit.timezone), e.g. 2026-11-21T16:00.")
@click.option("--to", "until", help="Only events before this date or time, e.g. 2026-11-22.")
@click.option("--format", "fmt", type=click.Choice(["text", "csv", "html", "json"]), default="text", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write to this file instead of printing.")
@db_option
def hq_report(site: str | None, since: str | None, until: str | None, fmt: str, out: str | None,
              db_url: str | None) -> None:
    """Reconcile sales, stock, cash, card settlements and admissions across kits.

    \b
    Example:
      fieldkit hq report --site market --from 2026-11-21 --to 2026-11-22 --format csv --out market.csv
    """
    from sync.hq.reconcile import build_report, parse_bound

    config = get_config()
    tz = config["kit.timezone"]
    try:
        bounds = {"since": parse_bound(since, tz), "until": parse_bound(until, tz)}
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    report = build_report(hq_engine(db_url), site=site, card_match_minutes=config["hq.card_match_minutes"], tz=tz,
                          **bounds)
    write_report(report, fmt, out)


def write_report(report, fmt: str, out: str | None) -> None:
    """The report in ``fmt`` to the file ``out``, or to stdout (`hq report`, `mirror report`)."""
    from sync.hq.render import render

    text = render(report, fmt)
    if out:
        Path(out).write_text(text)
        click.echo(f"wrote {out}")
    else:
        sys.stdout.write(text)


from sync.hq.retention_cli import hq_privacy_group  # noqa: E402 -- registered after the group it joins

hq_group.add_command(hq_privacy_group)


def _register_fleet_commands() -> None:
    from sync.hq.fleet_cli import bundles_group, rollout_group

    hq_group.add_command(bundles_group)
    hq_group.add_command(rollout_group)


_register_fleet_commands()
