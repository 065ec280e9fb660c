"""How the core finds the checkin feature's parts (see kit/features.py)."""

from checkin.documents import DOCUMENTS
from checkin.migrations import MIGRATIONS, PROJECTION_TABLES
from kit.features import Feature, lazy


def _service(ctx) -> None:
    from checkin.service import run

    run(ctx)


def _blueprint():
    from checkin.web import blueprint

    return blueprint()


FEATURE = Feature(
    name="checkin",
    title="Door check-in",
    migrations=MIGRATIONS,
    cli="checkin.cli:checkin",
    extra_cli=["checkin.tickets_cli:tickets"],
    service=_service,
    projection_tables=PROJECTION_TABLES,
    apply_event=lazy("checkin.scans:apply_event"),
    documents=DOCUMENTS,
    blueprint=_blueprint,
    nav=("Door", "/door", "door"),
    doctor_checks=[lazy("checkin.doctor:check_door"), lazy("checkin.doctor:check_scan_devices")],
    demo_setup=lazy("checkin.demo:demo_setup"),
    erase_personal_data=lazy("checkin.privacy:erase_personal_data"),
)
