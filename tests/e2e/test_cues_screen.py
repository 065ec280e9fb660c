"""A lead presses GO and then STOP ALL on the cue screen of a running kit (real browser, real services)."""

import pytest

pytestmark = pytest.mark.browser


def dmx(page, channel: int) -> int:
    return int(page.locator(f"#dmx-{channel} .v").inner_text())


def test_go_then_stop_all_on_the_cue_screen(kit_factory, page, sign_in):
    kit = kit_factory(["web", "status", "cues"])
    sign_in(page, kit, "lead", "/cues")
    page.goto(kit.url + "cues")
    page.wait_for_selector("#cue-preshow.standing")
    assert "Pre-show" in page.locator("#standing").inner_text()
    assert page.locator("#out-dmx .state").inner_text() == "ok"

    page.click("#go")
    page.locator("#message", has_text="fired Pre-show").wait_for()
    page.wait_for_selector("#cue-walkin.standing")  # the playhead moved on
    page.wait_for_function("() => Number(document.querySelector('#dmx-1 .v').textContent) > 0")  # house rising
    assert page.locator("#cue-preshow td.state").inner_text().lower() == "running"

    page.click("#stop-all")
    page.locator("#message", has_text="stopped everything").wait_for()
    page.wait_for_selector("#cue-preshow.idle")
    house = dmx(page, 1)
    page.wait_for_timeout(1500)  # longer than the rest of the fade and the auto-follow point
    assert dmx(page, 1) == house, "the fade stopped where it was"
    assert dmx(page, 3) == 0, "the walk-in cue never auto-followed"
    assert page.locator("#cue-walkin td.state").inner_text().lower() == "idle"
    history = kit.fieldkit("ledger", "tail", "-n", "5").stdout
    assert "cues.fired" in history and "cues.stop_all" in history
