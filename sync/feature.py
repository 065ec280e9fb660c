"""How the core finds the sync feature's parts (see kit/features.py)."""

from kit.features import Feature, lazy
from sync.migrations import MIGRATIONS


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
    cli="sync.cli:sync_group",
    extra_cli=["sync.hq.cli:hq_group", "sync.mirror_cli:mirror_group", "sync.mirror_cli:restore_command",
               "sync.mirror_cli:backup_group"],
    blueprint=_blueprint,
    nav=("Sync", "/sync", "lead"),
    service=lazy("sync.service:run"),
    doctor_checks=[_doctor],
    erase_personal_data=lazy("sync.privacy:erase_personal_data"),
    acknowledged_seq=lazy("sync.privacy:acknowledged_seq"),
)
