"""Under `fieldkit up --simulate` a lead's clock correction stays with the kit, never the host's clock."""

from __future__ import annotations

import time


def test_setting_the_clock_under_simulation_never_calls_timedatectl(kit_env, command_spy, monkeypatch):
    mark = command_spy("timedatectl")
    monkeypatch.setenv("FIELDKIT_KIT_CLOCK_METHOD", "timedated")  # what an appliance would use
    from kit.config import load_config
    from kit.service import make_context

    ctx = make_context("cli", load_config())
    assert ctx.config.simulate
    method = ctx.clock.set_time(time.time() + 3600, who="lead")
    assert method == "offset" and not mark.exists()
    assert 3500 < ctx.clock.time() - time.time() < 3700  # the kit still keeps the lead's time

    monkeypatch.setenv("FIELDKIT_KIT_SIMULATE_HOST_ACTIONS", "1")  # a rehearsal with a stand-in may ask for it
    ctx = make_context("cli", load_config())
    assert ctx.clock.set_time(time.time(), who="lead") == "timedated" and mark.exists()
