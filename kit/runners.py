"""Which loop each service name runs, and which services share a process (``service.groups``).

A *service group* is several light services run as supervised threads of one process (kit/service.py),
to fit a 512 MB Pi: one Python interpreter and one copy of the kit's core instead of one per service.
``fieldkit up`` starts one child per process of ``process_plan``; on the appliance a group runs as
``fieldkit-group@<first member>.service`` (``fieldkit run --group <first member>``) and each member's own
unit steps aside (``fieldkit run --check <name>`` in its ``ExecCondition=``).

This module is read by every service process: it imports nothing heavy (no click, no paho).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kit.config import Config

GROUPS_KEY = "service.groups"


def service_names() -> list[str]:
    from kit.features import load_features

    return ["web", "status"] + [f.name for f in load_features() if f.service]


def service_loop(name: str) -> Callable | None:
    if name == "web":
        from kit.web.service import run_web

        return run_web
    if name == "status":
        from kit.status import run_status

        return run_status
    from kit.features import load_features

    for f in load_features():
        if f.name == name:
            return f.service
    return None


def parse_groups(value: list, names: list[str], where: str = GROUPS_KEY) -> list[list[str]]:
    """The groups a ``service.groups`` value declares; ConfigError for an unknown or repeated name.

    Each entry is a list of service names (TOML: ``groups = [["status", "power"]]``) or one string
    joined by ``+`` (the environment: ``FIELDKIT_SERVICE_GROUPS=status+power,cues+sync``). A group of
    one is no group.
    """
    from kit.config import ConfigError

    groups, seen = [], set()
    for entry in value:
        members = entry.split("+") if isinstance(entry, str) else entry
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise ConfigError(f"{where}: '{GROUPS_KEY}' entries must be lists of service names, got {entry!r}")
        members = [m.strip() for m in members if m.strip()]
        for m in members:
            if m not in names:
                raise ConfigError(f"{where}: '{GROUPS_KEY}' names {m!r}, which is not a service of this kit "
                                  f"(services: {', '.join(names)})")
            if m in seen:
                raise ConfigError(f"{where}: '{GROUPS_KEY}' puts {m!r} in two groups; a service runs in one process")
            seen.add(m)
        if len(members) > 1:
            groups.append(members)
    return groups


def configured_groups(config: Config) -> list[list[str]]:
    return parse_groups(config[GROUPS_KEY], service_names(), config.sources.get(GROUPS_KEY, GROUPS_KEY))


def process_plan(config: Config, only: list[str] | None = None) -> list[list[str]]:
    """The processes of the kit, each a list of service names: every configured group (restricted to
    ``only`` when given), then every other service alone, in service order."""
    names = [n for n in service_names() if not only or n in only]
    plan = [[m for m in group if m in names] for group in configured_groups(config)]
    plan = [members for members in plan if members]
    grouped = {m for members in plan for m in members}
    return plan + [[n] for n in names if n not in grouped]


def group_of(config: Config, name: str) -> list[str] | None:
    """The configured group ``name`` belongs to, or None when it runs alone."""
    return next((g for g in configured_groups(config) if name in g), None)


def unit_name(members: list[str]) -> str:
    """The systemd unit that runs this process on the appliance."""
    return f"fieldkit-group@{members[0]}.service" if len(members) > 1 else f"fieldkit-{members[0]}.service"


RUN_USAGE = """usage: fieldkit run [--check] SERVICE [SERVICE ...]
       fieldkit run [--check] --group FIRST

Run one service in the foreground (what each systemd unit runs), or several as one service group.
SERVICE is web, status, or a feature: checkin, pos, power, cues, sync.
  --group FIRST  run the group of service.groups whose first member is FIRST (fieldkit-group@FIRST.service)
  --check        run nothing: exit 0 if this is one process of the kit under service.groups, else say
                 where the service runs and exit 1 (each unit's ExecCondition=); 255 on a bad setting

Example:
  fieldkit run pos
  fieldkit run --group status
"""


class UsageError(Exception):
    pass


def error_line(e: BaseException) -> str | None:
    """One clear line for an error a person can fix (the CLI's and the runner's), or None for a bug."""
    import sqlite3

    from kit.config import ConfigError
    from kit.db import DatabaseBusy
    from kit.documents import DocumentError
    from kit.secrets import SecretsError

    if isinstance(e, ConfigError | DatabaseBusy | DocumentError | SecretsError):
        return f"error: {e}"
    if isinstance(e, PermissionError):
        return f"error: {e.filename or e}: permission denied (run as the fieldkit user or root)"
    if isinstance(e, OSError):
        if e.errno == 28:
            return f"error: the disk is full ({e.filename or ''}); free space on the data partition"
        return f"error: {e.filename or ''}: {e.strerror or e}"
    if isinstance(e, sqlite3.OperationalError):
        hint = "free space on the data partition" if "full" in str(e) else "run `fieldkit doctor`"
        return f"error: the database said: {e}; {hint}"
    return None


def parse_run_args(args: list[str]) -> tuple[list[str], bool, bool]:
    """(services, --group given, --check given) from ``fieldkit run``'s arguments."""
    check = group = False
    names: list[str] = []
    for arg in args:
        if arg == "--check":
            check = True
        elif arg == "--group":
            group = True
        elif arg.startswith("-"):
            raise UsageError(f"no such option: {arg}")
        else:
            names += [n for n in arg.split("+") if n]  # `fieldkit run status+power` as well
    if not names:
        raise UsageError("missing SERVICE")
    if group and len(names) != 1:
        raise UsageError("--group takes the group's first member only")
    if len(set(names)) != len(names):
        raise UsageError("a service named twice")
    return names, group, check


def run_command(args: list[str]) -> int:
    """``fieldkit run``: the path every service process starts through, without click or the CLI's imports."""
    import sys

    from kit.config import ConfigError, load_config

    try:
        names, group, check = parse_run_args(args)
    except UsageError as e:
        print(f"{RUN_USAGE}\nerror: {e}", file=sys.stderr)
        return 2
    try:
        config = load_config()
        if config.paths.home is not None and config.sources.get("mqtt.port") == "default":
            from kit.up_record import with_recorded_broker  # a running `fieldkit up`'s private broker

            config = with_recorded_broker(config)
        known = service_names()
        unknown = [n for n in names if n not in known]
        if unknown:
            print(f"{RUN_USAGE}\nerror: no service called {unknown[0]!r}", file=sys.stderr)
            return 2
        if group:
            members = next((g for g in configured_groups(config) if g[0] == names[0]), None)
            if members is None:
                print(f"error: no group of service.groups starts with {names[0]!r} "
                      f"(groups: {configured_groups(config) or 'none'})", file=sys.stderr)
                return 1
            names = members
        if check:
            return _check(config, names, group)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        # --check is a unit's ExecCondition=: 1 would skip the unit quietly (every unit, with a bad
        # service.groups); 255 fails it, with this line in its journal
        return 255 if check else 1
    from kit.logs import setup_logging
    from kit.service import run_services

    setup_logging(config["service.log_level"], "+".join(names))
    try:
        return run_services([(n, service_loop(n)) for n in names], config)
    except Exception as e:
        line = error_line(e)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 1


def _check(config: Config, names: list[str], group: bool) -> int:
    if group:
        return 0  # the group exists (checked by the caller): its unit runs it
    import sys

    grouped = [g for n in names if (g := group_of(config, n)) is not None]
    if len(names) == 1 and not grouped:
        return 0
    where = grouped[0] if grouped else names
    print(f"{names[0]} runs in the service group {'+'.join(where)} ({unit_name(where)}) under service.groups; "
          "this unit stays stopped", file=sys.stderr)
    return 1
