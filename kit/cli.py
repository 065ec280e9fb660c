"""The ``fieldkit`` command line: the core's commands plus each feature's group.

Every command's help ends with an example; tests/test_docs.py checks that the README or docs/
mention every command.
"""

from __future__ import annotations

import json
import logging
import sys

import click

from kit.config import Config, ConfigError, all_settings, load_config

log = logging.getLogger("fieldkit.cli")


class KitGroup(click.Group):
    """Turns domain errors into one clear line and exit code 1, never a traceback.

    Feature command groups are added on first use, so a feature's cli module may import
    helpers from here (``get_config``, ``get_db``) without an import cycle.
    """

    _features_added = False

    def _add_features(self) -> None:
        if not KitGroup._features_added:
            KitGroup._features_added = True
            _add_feature_commands()

    def list_commands(self, ctx):
        self._add_features()
        return super().list_commands(ctx)

    def get_command(self, ctx, name):
        self._add_features()
        return super().get_command(ctx, name)

    def invoke(self, ctx):
        from kit.runners import error_line

        try:
            return super().invoke(ctx)
        except Exception as e:  # error_line picks what a person can fix; the rest (click's own, bugs) goes on
            line = error_line(e)
            if line is None:
                raise
            click.secho(line, fg="red", err=True)
            sys.exit(1)


def get_config() -> Config:
    ctx = click.get_current_context()
    obj = ctx.ensure_object(dict)
    if "config" not in obj:
        from kit.up_record import with_recorded_broker

        obj["config"] = with_recorded_broker(load_config())  # a running `fieldkit up`'s private broker
    return obj["config"]


def get_db():
    from kit.service import open_database

    return open_database(get_config())


@click.group(cls=KitGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="fieldkit")
def cli() -> None:
    """Field Kit: offline check-in, point of sale, power, cues and sync for pop-up events.

    \b
    Example:
      FIELDKIT_HOME=~/kit fieldkit init --kit-id door1 --site market
      FIELDKIT_HOME=~/kit fieldkit up --simulate
    """


# --- config --------------------------------------------------------------------------------------

@cli.group("config")
def config_group() -> None:
    """Inspect the kit's settings.

    \b
    Example:
      fieldkit config show
    """


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--all", "show_all", is_flag=True, help="Include each setting's help line.")
def config_show(as_json: bool, show_all: bool) -> None:
    """Print every setting's effective value and where it came from.

    \b
    Example:
      fieldkit config show --all
    """
    config = get_config()
    settings = all_settings()
    rows = []
    for key in sorted(settings):
        s = settings[key]
        value = config[key]
        shown = "********" if s.secret and value else value
        rows.append({"key": key, "value": shown, "source": config.sources[key], "env": s.env_name, "help": s.help})
    if as_json:
        click.echo(json.dumps({"paths": {k: str(v) for k, v in vars(config.paths).items()}, "settings": rows}, indent=2))
        return
    click.echo(f"# kit.toml:      {config.paths.kit_toml}\n# fieldkit.toml: {config.paths.boot_toml}\n# data:          {config.paths.data_dir}")
    width = max(len(r["key"]) for r in rows)
    for r in rows:
        click.echo(f"{r['key']:<{width}}  {json.dumps(r['value'])}  ({r['source']})")
        if show_all:
            click.echo(f"{'':<{width}}    {r['help']}  [{r['env']}]")


# --- init ----------------------------------------------------------------------------------------

@cli.command("init")
@click.option("--kit-id", help="This kit's id (letters, digits, - and _).")
@click.option("--site", help="The site this kit belongs to.")
@click.option("--demo", is_flag=True, help="Also load each feature's sample data (for `make demo`).")
@click.option("--force", is_flag=True, help="Replace existing PINs and the session key.")
def init_cmd(kit_id: str | None, site: str | None, demo: bool, force: bool) -> None:
    """Create the state dir, settings, database and one random PIN per role.

    Idempotent: existing secrets are kept unless --force is given. The PINs are printed once.

    \b
    Example:
      FIELDKIT_HOME=~/kit fieldkit init --kit-id door1 --site market
    """
    from kit.initkit import init_kit

    pins = init_kit(kit_id=kit_id, site=site, demo=demo, force=force, echo=click.echo)
    config = load_config()
    if pins:
        click.echo("Staff PINs (shown once; the lead PIN is also kept for the setup slip until the lead sets one):")
        for role, pin in pins.items():
            click.secho(f"  {role:<6} {pin}", bold=True)
    else:
        click.echo("Secrets already exist and were kept (use --force to make new PINs).")
    click.echo(f"Kit '{config.kit_id}' at site '{config.site}', data in {config.data_dir}")


# --- documents -----------------------------------------------------------------------------------

@cli.group("documents")
def documents_group() -> None:
    """Reference documents (ticket lists, keys, catalogue, pickups, cue sheets).

    \b
    Example:
      fieldkit documents list
    """


@documents_group.command("list")
def documents_list() -> None:
    """List the current version of each imported document.

    \b
    Example:
      fieldkit documents list
    """
    from kit.documents import current_documents, document_kinds

    current = {d["kind"]: d for d in current_documents(get_db())}
    for kind, doc in sorted(document_kinds().items()):
        cur = current.get(kind)
        where = f"v{cur['version']} {cur['filename']} ({cur['source']}, {cur['imported_at']})" if cur else "not imported"
        click.echo(f"{kind:<22} {doc.title:<24} {where}")


@documents_group.command("import")
@click.argument("kind")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Show what would change without importing.")
def documents_import(kind: str, file: str, dry_run: bool) -> None:
    """Import a reference document of KIND through its feature's importer.

    \b
    Example:
      fieldkit documents import pos.catalogue catalogue.csv --dry-run
    """
    from pathlib import Path

    from kit.documents import import_document

    data = Path(file).read_bytes()
    record, report = import_document(get_config(), get_db(), kind, data, Path(file).name, dry_run=dry_run)
    print_report(report, dry_run)


def print_report(report, dry_run: bool = False) -> None:
    click.echo(("would import: " if dry_run else "") + report.summary())
    for note in report.notes:
        click.echo(f"  note: {note}")
    for row, reason in report.skipped[:50]:
        click.echo(f"  row {row}: skipped, {reason}")
    if len(report.skipped) > 50:
        click.echo(f"  … and {len(report.skipped) - 50} more skipped rows")


# --- clock ---------------------------------------------------------------------------------------

@cli.group("clock")
def clock_group() -> None:
    """The kit's clock (a Pi has no battery-backed clock).

    \b
    Example:
      fieldkit clock status
    """


@clock_group.command("status")
def clock_status() -> None:
    """Say whether the kit's clock can be trusted.

    \b
    Example:
      fieldkit clock status
    """
    from kit.service import make_context

    status = make_context("cli", get_config()).clock.status()
    click.echo(json.dumps(status.as_dict(), indent=2))


# --- services ------------------------------------------------------------------------------------

@cli.command("run")
@click.argument("services", nargs=-1, required=True, metavar="SERVICE...")
@click.option("--group", "group", is_flag=True, help="Run the group of service.groups whose first member is SERVICE.")
@click.option("--check", is_flag=True, help="Run nothing: exit 0 if this is one process of the kit under "
              "service.groups, else say where the service runs and exit 1 (the units' ExecCondition=).")
def run_cmd(services: tuple[str, ...], group: bool, check: bool) -> None:
    """Run one service in the foreground (what each systemd unit runs), or several as one service group.

    SERVICE is web, status, or a feature: checkin, pos, power, cues, sync. Several SERVICEs (or
    status+power+cues) run in one process, each with its own bus client, health and vital threads;
    `fieldkit up` and the units run the groups of the service.groups setting this way. (The `fieldkit`
    command takes this path without loading the rest of the command line: kit/runners.py.)

    \b
    Example:
      fieldkit run pos
      fieldkit run --group status
    """
    from kit.runners import run_command

    sys.exit(run_command(list(services) + (["--group"] if group else []) + (["--check"] if check else [])))


@cli.command("up")
@click.option("--simulate", is_flag=True, help="Use the simulated backend of every device.")
@click.option("--only", multiple=True, help="Run only these services (repeatable).")
@click.option("--existing-broker", is_flag=True,
              help="Use the broker at mqtt.host:mqtt.port instead of a private one on a free port.")
def up_cmd(simulate: bool, only: tuple[str, ...], existing_broker: bool) -> None:
    """Run every service under one supervisor (laptop or demo), with a private broker if needed.

    With FIELDKIT_HOME set and no mqtt.port given, the broker is a private one on a free port
    (recorded in the data dir, so `cues fire`, `sync now`, ... find it). Stops everything on Ctrl-C.

    \b
    Example:
      FIELDKIT_HOME=.demo fieldkit up --simulate
    """
    from kit.logs import setup_logging
    from kit.supervisor import Supervisor

    config = load_config()  # not a recorded broker: this command decides which broker to use
    setup_logging(config["service.log_level"], "up")
    sys.exit(Supervisor(config, simulate=simulate, only=list(only), existing_broker=existing_broker).run())


@cli.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def doctor_cmd(as_json: bool) -> None:
    """Check the kit: broker, database, disk, clock, each device. Exit 1 on any FAIL.

    \b
    Example:
      fieldkit doctor --json
    """
    from kit.doctor import print_checks, run_checks

    try:
        config = get_config()
    except ConfigError:
        config = None  # run_checks reports the broken file as a check
    checks = run_checks(config)
    if as_json:
        click.echo(json.dumps([c.as_dict() for c in checks], indent=2))
    else:
        print_checks(checks)
    sys.exit(1 if any(c.level == "FAIL" for c in checks) else 0)


@cli.group("pin")
def pin_group() -> None:
    """Staff PINs.

    \b
    Example:
      fieldkit pin set lead
    """


@pin_group.command("set")
@click.argument("role", type=click.Choice(["door", "merch", "lead"]))
@click.option("--pin", prompt=True, hide_input=True, confirmation_prompt=True, help="The new PIN (4-12 digits).")
def pin_set(role: str, pin: str) -> None:
    """Set the PIN of a role.

    \b
    Example:
      fieldkit pin set door
    """
    from kit.secrets import Secrets

    Secrets(get_config().secrets_dir).set_pin(role, pin)
    click.echo(f"{role} PIN changed.")


def _add_feature_commands() -> None:
    from kit.appliance.cli import appliance
    from kit.features import load_features, resolve
    from kit.ledger_cli import db_group, ledger_group
    from kit.privacy_cli import ledger_truncate, privacy
    from kit.update.cli import release, update

    ledger_group.add_command(ledger_truncate)
    for command in (appliance, db_group, ledger_group, privacy, release, update):
        cli.add_command(command)

    for feature in load_features():
        if feature.cli is not None:
            group = resolve(feature.cli)
            cli.add_command(group, group.name or feature.name)
        for command in feature.extra_cli:
            cli.add_command(resolve(command))


# Data files made by the CLI or `fieldkit up` are not world-readable, as under the units' UMask=0027.
UMASK = 0o027


def main() -> None:
    import os

    os.umask(UMASK)
    try:
        cli(prog_name="fieldkit")
    except ConfigError as e:
        click.secho(f"error: {e}", fg="red", err=True)
        sys.exit(1)
