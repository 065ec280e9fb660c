"""Under `fieldkit up --simulate` a lead's clock correction stays with the kit, never the host's clock."""

from __future__ import annotations

import os
import stat
import time


def test_setting_the_clock_under_simulation_never_calls_timedatectl(kit_env, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mark = tmp_path / "timedatectl-ran"
    spy = bin_dir / "timedatectl"
    spy.write_text(f"#!/bin/sh\necho \"$@\" >> {mark}\n")
    spy.chmod(spy.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
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
