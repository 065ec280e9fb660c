"""A kit running the real lead service loop on a thread, and run-sheets written for a test's clock."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.conftest import ServiceThread


def runsheet_text(tz, first_start: float, slots: list[tuple[str, float]], name: str = "Test evening") -> str:
    """A run-sheet whose slots follow each other from ``first_start`` (unix seconds; minutes may be fractional)."""
    lines = [f'name = "{name}"', f'date = "{datetime.fromtimestamp(first_start, tz):%Y-%m-%d}"']
    at = first_start
    for slot_name, minutes in slots:
        local = datetime.fromtimestamp(at, tz)
        lines += ["[[slot]]", f'name = "{slot_name}"', f'start = "{local.isoformat(timespec="seconds")}"',
                  f"minutes = {minutes}", 'stage = "Bench"', 'host = "Ana"']
        at += minutes * 60
    return "\n".join(lines) + "\n"


class RunningLead(ServiceThread):
    """The real lead service loop on a thread, with its own bus connection (as `fieldkit run lead`)."""

    def __init__(self, config):
        from lead.service import run

        super().__init__("lead", config, run, ready="lead")
        self.runner = self.ctx.lead

    def import_runsheet(self, text: str) -> None:
        from kit.documents import import_document
        from lead.documents import KIND

        import_document(self.config, self.ctx.db, KIND, text.encode(), "tonight.toml")


@pytest.fixture
def start_lead():
    running: list[RunningLead] = []

    def start(config) -> RunningLead:
        service = RunningLead(config)
        running.append(service)
        return service

    yield start
    for service in running:
        service.stop()
