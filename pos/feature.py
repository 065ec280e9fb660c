"""How the core finds the pos feature's parts (see kit/features.py)."""

from __future__ import annotations

from pathlib import Path

from kit.documents import DocumentKind
from kit.features import Feature, lazy
from pos.migrations import MIGRATIONS, PROJECTION_TABLES

DEMO = Path(__file__).parent / "demo"


def _service(ctx) -> None:
    from pos.service import run

    run(ctx)


def _blueprint():
    from pos.web import blueprint

    return blueprint()


def _demo_setup(config, db) -> None:
    from kit.documents import import_document

    for kind, name in (("pos.catalogue", "catalogue.csv"), ("pos.pickups", "pickups.csv")):
        import_document(config, db, kind, (DEMO / name).read_bytes(), name, source="demo", kinds=_kinds())


def _kinds() -> dict[str, DocumentKind]:
    return {d.kind: d for d in DOCUMENTS}


def _doctor_printer(config):
    from pos.doctor import check_printer

    return check_printer(config)


def _doctor_catalogue(config):
    from pos.doctor import check_catalogue

    return check_catalogue(config)


DOCUMENTS = [
    DocumentKind("pos.catalogue", "Catalogue and stock", lazy("pos.catalogue:import_catalogue"), accept=(".csv", ".json"),
                 help="CSV or JSON: sku, name, price (25.00); optional variant, tax_rate, stock, barcode, active."),
    DocumentKind("pos.pickups", "Pickup list", lazy("pos.pickups:import_pickups"), accept=(".csv", ".json"),
                 help="CSV: code, name, sku, qty (one row per item) or code, name, items ('1x Hoodie M; 2x Sticker')."),
]

FEATURE = Feature(
    name="pos",
    title="Merch",
    migrations=MIGRATIONS,
    cli="pos.cli:pos",
    blueprint=_blueprint,
    nav=("Merch", "/merch", "merch"),
    service=_service,
    projection_tables=PROJECTION_TABLES,
    apply_event=lazy("pos.projection:apply_event"),
    documents=DOCUMENTS,
    doctor_checks=[_doctor_printer, _doctor_catalogue],
    demo_setup=_demo_setup,
    erase_personal_data=lazy("pos.privacy:erase_personal_data"),
)
