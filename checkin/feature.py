"""How the core finds the checkin feature's parts (see kit/features.py)."""

from checkin.cli import checkin, tickets
from checkin.demo import demo_setup
from checkin.doctor import check_door, check_scan_devices
from checkin.documents import DOCUMENTS
from checkin.migrations import MIGRATIONS, PROJECTION_TABLES
from checkin.scans import apply_event
from kit.features import Feature


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
    cli=checkin,
    extra_cli=[tickets],
    service=_service,
    projection_tables=PROJECTION_TABLES,
    apply_event=apply_event,
    documents=DOCUMENTS,
    blueprint=_blueprint,
    nav=("Door", "/door", "door"),
    doctor_checks=[check_door, check_scan_devices],
    demo_setup=demo_setup,
)
