"""The feature registry: how the core finds each feature's parts.

Each feature package has ``feature.py`` with a module-level ``FEATURE = Feature(...)``. The core
never imports feature internals; it only reads these fields. Features never import each other.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import click
    from flask import Blueprint

    from kit.config import Config
    from kit.db import Database, MigrationSet
    from kit.doctor import Check
    from kit.documents import DocumentKind
    from kit.service import ServiceContext

from kit.config import FEATURE_PACKAGES


@dataclass
class Feature:
    name: str
    title: str = ""
    # Its own tables: a named migration set recorded in the database.
    migrations: MigrationSet | None = None
    # `fieldkit <name> ...` commands (a click group), and any extra top-level commands; either the
    # object or "module:attr", imported only when the command line is built.
    cli: click.Group | str | None = None
    extra_cli: list[click.Command | str] = field(default_factory=list)
    # A factory returning the feature's Flask blueprint (called once per app).
    blueprint: Callable[[], Blueprint] | None = None
    # Navigation entry on the dashboard: (label, url path, role needed).
    nav: tuple[str, str, str] | None = None
    # The long-running loop run by `fieldkit run <name>`; returns when ctx.stopping is set.
    service: Callable[[ServiceContext], None] | None = None
    # `fieldkit ledger rebuild`: drop + recreate the projection tables, then replay events.
    projection_tables: list[str] = field(default_factory=list)
    apply_event: Callable[[Any, dict], None] | None = None  # (conn, event row as dict)
    # Reference documents this feature owns, by kind.
    documents: list[DocumentKind] = field(default_factory=list)
    # Doctor checks: each returns a list of Check results.
    doctor_checks: list[Callable[[Config], list[Check]]] = field(default_factory=list)
    # Sample data for `make demo` (called after migrations, with a Database).
    demo_setup: Callable[[Config, Database], None] | None = None
    # Attendee privacy (kit/privacy.py): erase this feature's personal data (names, e-mails, phones,
    # answers, notes; keys and state stay) through the kit.privacy_hooks.ErasureContext it is given, which also
    # counts without changing anything for `fieldkit privacy status`.
    erase_personal_data: Callable[[Any], None] | None = None
    # The highest seq of this kit's ledger an upstream holds (HQ, a hub's mirror): (Database, Config) ->
    # int, or None when there is no such upstream. The ledger is truncated, and personal data erased,
    # only up to what one holds.
    acknowledged_seq: Callable[[Database, Config], int | None] | None = None


def lazy(target: str) -> Callable:
    """``"module:function"`` as a function imported on first call.

    Every process reads every feature's registration (migrations, service names); this keeps it
    from also importing every feature's code, which costs ~30 MB per process on a 512 MB Pi.
    """
    module_name, _, attr = target.partition(":")

    def call(*args, **kwargs):
        return getattr(importlib.import_module(module_name), attr)(*args, **kwargs)

    call.__name__ = attr
    call.__qualname__ = target
    call.__doc__ = f"Calls {target} (imported on first use)."
    return call


def resolve(obj):
    """A registration given as ``"module:attr"`` turned into the object it names."""
    if isinstance(obj, str):
        module_name, _, attr = obj.partition(":")
        return getattr(importlib.import_module(module_name), attr)
    return obj


def load_features() -> list[Feature]:
    features = []
    for pkg in FEATURE_PACKAGES:
        module = importlib.import_module(f"{pkg}.feature")
        features.append(module.FEATURE)
    return features


def get_feature(name: str) -> Feature:
    for f in load_features():
        if f.name == name:
            return f
    raise KeyError(name)


def all_migration_sets() -> list[MigrationSet]:
    """The core's migration set, then each feature's: what the wiring (CLI, runner, supervisor) hands
    to ``kit.db.apply_migrations``. Lives here, not in kit/db.py, so the database layer never reaches
    up to the features."""
    from kit import core_migrations

    return [core_migrations.CORE] + [f.migrations for f in load_features() if f.migrations]
