"""A lead signs in with a real browser, sees the dashboard, and watches a tile change live."""

import os
import re
import signal

import pytest

pytestmark = pytest.mark.browser


def test_lead_sees_services_live_and_a_stopped_service_turns_red(kit_factory, page, sign_in):
    kit = kit_factory(["web", "status"])
    sign_in(page, kit, "lead")
    page.wait_for_selector("#svc-web.ok")
    tile = page.locator("#svc-status")
    tile.locator(".state", has_text="ok").wait_for()
    status_pid = next(int(m) for m in re.findall(r"name=status pid=(\d+)", kit.log_path.read_text()))
    os.kill(status_pid, signal.SIGTERM)  # a clean stop publishes offline at once
    page.wait_for_selector("#svc-status.offline")  # no reload: the tile changed over the event stream
    assert page.locator("#svc-status .state").inner_text() == "offline"
    page.wait_for_selector("#svc-status.ok", timeout=20_000)  # `fieldkit up` restarted it


def test_wrong_pin_is_refused_and_repeated_wrong_pins_are_slowed(web_kit, page):
    for _ in range(3):
        page.goto(web_kit.url + "login")
        page.fill("#pin", "000000")
        page.click("button[type=submit]")
        assert "Wrong PIN" in page.locator("#login-error").inner_text()
    page.goto(web_kit.url + "login")
    page.fill("#pin", "000000")
    page.click("button[type=submit]")
    assert re.search(r"Wait \d+ s and try again", page.locator("#login-error").inner_text())
    assert page.url.endswith("/login")
    # the page counts the wait down in words; then the right PIN from the same tablet gets in
    page.locator("#login-error", has_text="You can try again now").wait_for(timeout=35_000)
    page.fill("#pin", web_kit.pins["lead"])
    page.click("button[type=submit]")
    page.wait_for_selector("#svc-web")
    assert not page.url.endswith("/login")
