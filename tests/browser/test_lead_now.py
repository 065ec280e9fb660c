"""The lead's Now / Next screen in a real browser: the running slot, Running late, Next slot, on the 7-inch screen.

The kit runs the web and the lead service (simulated, demo run-sheet: its first slot began five minutes ago).
"""

from __future__ import annotations

import re

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("lead-now")]


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
        assert re.fullmatch(r"1[45]:\d\d", page.inner_text("#countdown"))  # 20 min slot, 5 min in
        before = page.inner_text("#next-in")
        page.click("#btn-late")
        page.wait_for_function("() => /5 min behind plan/.test(document.getElementById('behind').textContent)")
        assert page.inner_text("#next-in") != before and re.fullmatch(r"(19|20):\d\d", page.inner_text("#countdown"))
        page.click("#btn-next")
        page.wait_for_function("() => document.getElementById('now-name').textContent === 'Poetry bench'")
        assert page.inner_text("#next-name") == "Open mic"
        assert "Moved on" in page.inner_text("#message")
    finally:
        context.close()
