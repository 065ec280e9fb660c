"""Door staff in a real browser: the simulated scanner reads tickets and the door screen shows verdicts."""

import pytest

pytestmark = pytest.mark.browser


def test_door_sees_scanner_verdicts_live_and_admits_a_dead_phone_by_name(kit_factory, page, sign_in):
    # The scanner ignores a code seen again within the repeat window; keep it short to show the duplicate.
    kit = kit_factory(["web", "checkin"], extra_env={"FIELDKIT_CHECKIN_SCAN_REPEAT_WINDOW_S": "0.2"})
    sign_in(page, kit, "door", "/door")
    page.wait_for_selector("#demo-panel")
    page.select_option("#demo-source", "serial-scanner")
    stats_calls: list[str] = []  # the verdict event carries the counts: no stats request per scan
    page.on("request", lambda r: stats_calls.append(r.url) if "/api/v1/checkin/stats" in r.url else None)

    # A valid ticket shown to the handheld scanner (a real pty): the screen turns green, no reload.
    page.click("#demo-panel [data-sample=valid]")
    page.wait_for_selector("#verdict.green")
    assert page.locator("#verdict-word").inner_text() == "ADMIT"
    full = page.locator("#verdict-full")
    assert full.is_visible() and "green" in full.get_attribute("class")
    page.wait_for_selector("#count-in:text-is('1')")

    # The same ticket again: red, and the words say where and when it was used.
    page.click("#verdict-full")
    page.click("#demo-panel [data-sample=duplicate]")
    page.wait_for_selector("#verdict.red[data-verdict=already_in]")
    assert "Already checked in at" in page.locator("#verdict-why").inner_text()

    # A flagged ticket: amber, call a lead.
    page.click("#verdict-full")
    page.click("#demo-panel [data-sample=flagged]")
    page.wait_for_selector("#verdict.amber")
    assert page.locator("#verdict-word").inner_text() == "ADMIT — CALL A LEAD"  # admitted, and a lead must see them

    # A dead phone: find the guest by name, admit by hand with a reason.
    page.click("#verdict-full")
    page.fill("#search", "greta")
    first = page.locator("#results li").first
    first.wait_for()
    name = first.inner_text().split(" · ")[0]
    first.locator("button", has_text="Admit").click()
    page.fill("#admit-reason", "phone dead, ID checked")
    page.click("#admit-confirm")
    page.wait_for_selector("#verdict.green")
    assert page.locator("#verdict-who").inner_text().startswith(name)
    page.wait_for_selector("#count-in:text-is('3')")
    assert name in page.locator("#last-scans li").first.inner_text()
    assert len(stats_calls) <= 1, stats_calls  # four verdicts, at most the slow 30 s refresh
