"""Door staff in a real browser: the simulated scanner reads tickets and the door screen shows verdicts."""

import time

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
    watched_from = time.monotonic()

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

    # A dead phone: find the guest by name, confirm two things the ticket shop knows, admit.
    page.click("#verdict-full")
    page.fill("#search", "greta")
    first = page.locator("#results li").first
    first.wait_for()
    name, _type, order_code, email = first.locator(".info").inner_text().split(" · ")[:4]
    first.locator("button", has_text="Admit").click()
    page.fill("#check-order_code", order_code)
    page.fill("#check-email", "someone.else@example.org")
    page.click("#admit-confirm")
    page.wait_for_selector("#admit-error:text('does not match')")  # refused: the dialog stays, says which
    page.fill("#check-email", email.split(" — ")[0].upper())
    page.click("#admit-confirm")
    page.wait_for_selector("#verdict.green")
    assert page.locator("#verdict-who").inner_text().startswith(name)
    page.wait_for_selector("#count-in:text-is('3')")
    assert name in page.locator("#last-scans li").first.inner_text()
    # four verdicts, no stats request of their own: only the slow refresh, once per 30 s the test took
    assert len(stats_calls) <= 1 + int((time.monotonic() - watched_from) // 30), stats_calls


def test_door_staff_with_the_lead_pin_reissue_a_shared_code_and_the_new_one_shows_and_admits(kit_factory, page,
                                                                                             sign_in):
    kit = kit_factory(["web", "checkin"])
    sign_in(page, kit, "door", "/door")
    page.fill("#search", "greta")
    hit = page.locator("#results li:has(button.ok)").first
    hit.wait_for()
    name, _type, order_code, email = hit.locator(".info").inner_text().split(" · ")[:4]
    old_code = page.evaluate("async (q) => (await (await fetch('/api/v1/checkin/search?q=' + q)).json())"
                             ".results[0].ticket_key", order_code)
    hit.locator("button").click()
    page.fill("#check-order_code", order_code)
    page.fill("#check-email", email)
    page.click("#lead-part summary")
    page.fill("#admit-reason", "screenshot shared")
    page.fill("#lead-pin", "0000")  # a wrong PIN: refused, the dialog says so
    page.click("#reissue-btn")
    page.wait_for_selector("#admit-error:text('lead')")
    page.fill("#lead-pin", kit.pins["lead"])
    page.click("#reissue-btn")
    page.wait_for_selector("#reissued-dialog[open] #reissued-qr svg")
    new_code = page.locator("#reissued-code").inner_text()
    assert new_code.startswith("RE-") and name in page.locator("#reissued-detail").inner_text()
    page.click("#reissued-close")

    def scan(code: str) -> dict:
        return page.evaluate("async (code) => (await fk.post('/api/v1/checkin/scan', {payload: code})).data", code)

    old = scan(old_code)
    assert old["verdict"] == "revoked" and "reissued at" in old["reason"] and "(screenshot shared)" in old["reason"]
    assert scan(new_code)["verdict"] == "admit"
    assert scan(new_code)["verdict"] == "already_in"
    page.wait_for_selector("#by-method:text('admitted by scan 1 · second check 0')")
