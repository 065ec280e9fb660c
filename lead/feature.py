"""How the core finds the lead feature's parts (see kit/features.py)."""

from kit.features import Feature, lazy
from lead.documents import RUNSHEET_DOCUMENT
from lead.migrations import MIGRATIONS


def _blueprint():
    from lead.web import bp

    return bp


FEATURE = Feature(
    name="lead",
    title="Run-sheet",
    migrations=MIGRATIONS,
    extra_cli=["lead.cli:runsheet", "lead.cli:metrics_cmd", "lead.incidents_cli:incident"],
    service=lazy("lead.service:run"),
    documents=[RUNSHEET_DOCUMENT],
    blueprint=_blueprint,
    nav=("Now", "/lead", "lead"),
    demo_setup=lazy("lead.demo:demo_setup"),
    erase_personal_data=lazy("lead.privacy:erase_personal_data"),
)
