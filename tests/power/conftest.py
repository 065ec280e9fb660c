"""A power service running in this process on the simulated devices, against the test broker."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import pytest


@dataclass
class RunningPower:
    ctx: object
    service: object
    sources: object
    kit_id: str


@pytest.fixture
def power_service(kit_env, monkeypatch, request):
    """Start PowerService on the simulated charger + BMV (fast blocks, short staleness)."""
    kit_id = f"pw{os.getpid()}{request.node.name[-12:].replace('_', '')}"[:32]
    for key, value in {"KIT_ID": kit_id, "POWER_SIM_INTERVAL": "0.05", "POWER_STALE_SECONDS": "0.6",
                       "POWER_PUBLISH_SECONDS": "0.2", "POWER_SIM_SEED": "11",
                       "POWER_HISTORY_FINE_SECONDS": "1"}.items():
        monkeypatch.setenv(f"FIELDKIT_{key}", value)
    from kit.config import load_config
    from kit.service import make_context
    from power.service import PowerService
    from power.sources import Sources

    ctx = make_context("power", load_config())
    assert ctx.bus.start(wait=5)
    sources = Sources(ctx.config).start()
    service = PowerService(ctx, sources)
    service.attach()

    def loop():
        while ctx.sleep(0.05):
            service.step()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield RunningPower(ctx, service, sources, kit_id)
    ctx.stopping.set()
    thread.join(5)
    sources.stop()
    ctx.bus.stop()
    ctx.db.close()
