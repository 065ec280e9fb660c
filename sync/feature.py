"""How the core finds the sync feature's parts (see kit/features.py)."""

from kit.features import Feature
from sync.cli import sync_group
from sync.hq.cli import hq_group
from sync.migrations import MIGRATIONS
from sync.service import run


def _blueprint():
    from sync.web import blueprint

    return blueprint()


def _doctor(config):
    from sync.doctor import checks

    return checks(config)


FEATURE = Feature(
    name="sync",
    title="Sync",
    migrations=MIGRATIONS,
    cli=sync_group,
    extra_cli=[hq_group],
    blueprint=_blueprint,
    nav=("Sync", "/sync", "lead"),
    service=run,
    doctor_checks=[_doctor],
)
