"""How the core finds the power feature's parts (see kit/features.py)."""

from kit.features import Feature
from power.migrations import MIGRATIONS


def _service(ctx) -> None:
    from power.service import run

    run(ctx)


def _blueprint():
    from power.web import blueprint

    return blueprint()


def _demo(config, db) -> None:
    from power.demo import demo_setup

    demo_setup(config, db)


def _doctor(config) -> list:
    from power.doctor import checks

    return checks(config)


FEATURE = Feature(
    name="power",
    title="Power",
    migrations=MIGRATIONS,
    service=_service,
    cli="power.cli:power_group",
    blueprint=_blueprint,
    nav=("Power", "/power", "lead"),
    doctor_checks=[_doctor],
    demo_setup=_demo,
)
