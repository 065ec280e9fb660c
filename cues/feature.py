"""How the core finds the cues feature's parts (see kit/features.py)."""

from cues.documents import SHEET_DOCUMENT
from kit.features import Feature


def _service(ctx) -> None:
    from cues.service import run

    run(ctx)


def _doctor(config) -> list:
    from cues.doctor import checks

    return checks(config)


def _demo(config, db) -> None:
    from cues.demo import demo_setup

    demo_setup(config, db)


def _blueprint():
    from cues.web import blueprint

    return blueprint()


FEATURE = Feature(
    name="cues",
    title="Cues",
    cli="cues.cli:cues_group",
    service=_service,
    documents=[SHEET_DOCUMENT],
    doctor_checks=[_doctor],
    demo_setup=_demo,
    blueprint=_blueprint,
    nav=("Cues", "/cues", "lead"),
)
