"""The lead's Now / Next screen in a real browser: the running slot, Running late, Next slot, on the 7-inch screen.

The kit runs the web and the lead service (simulated, demo run-sheet: its first slot began five minutes ago).
"""

from __future__ import annotations

import re

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("lead-now")]


def seconds(countdown: str) -> int:
    minutes, secs = countdown.split(":")
    return int(minutes) * 60 + int(secs)


@pytest.fixture(scope="module")
def kit(module_kit_factory):
    return module_kit_factory(["web", "lead"])


def test_running_late_and_next_slot_move_the_evening_on_screen(browser, kit, screens):
    states = screens.signed_in_states(browser, kit, roles=("lead",))
    context = browser.new_context(viewport={"width": 800, "height": 480}, storage_state=states["lead"])
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        page.goto(kit.url + "lead")
        page.wait_for_function("() => document.getElementById('now-name').textContent === 'Walk-in beats'")
        # a 20 min slot that began 5 min before the kit started (a busy machine starts it later)
        assert re.fullmatch(r"1[0-5]:\d\d", page.inner_text("#countdown"))
        before, left = page.inner_text("#next-in"), seconds(page.inner_text("#countdown"))
        page.click("#btn-late")
        page.wait_for_function("() => /5 min behind plan/.test(document.getElementById('behind').textContent)")
        assert page.inner_text("#next-in") != before
        # five minutes more on the clock than before the press (less the seconds the press took)
        assert 5 * 60 - 30 <= seconds(page.inner_text("#countdown")) - left <= 5 * 60
        page.click("#btn-next")
        page.wait_for_function("() => document.getElementById('now-name').textContent === 'Poetry bench'")
        assert page.inner_text("#next-name") == "Open mic"
        assert "Moved on" in page.inner_text("#message")
    finally:
        context.close()
