"""Sounds and words on the door and merch screens in a real browser: which sound each verdict asks for,
volume and mute kept per terminal, a sale's confirmation; the flagged-ticket, count, rehearsal,
manual-admit and lead-refund wording. One simulated kit (web, checkin, pos) for the module."""

from __future__ import annotations

import os
import re
import signal

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("sound-words")]


@pytest.fixture(scope="module")
def kit(module_kit_factory):
    # the simulated scanner ignores a code seen again within this window: short, to scan twice
    return module_kit_factory(["web", "checkin", "pos"], extra_env={"FIELDKIT_CHECKIN_SCAN_REPEAT_WINDOW_S": "0.2"})


@pytest.fixture(scope="module")
def states(browser, kit, screens):
    return screens.signed_in_states(browser, kit)


@pytest.fixture
def open_page(browser, kit, states):
    contexts = []

    def opener(role: str, path: str, size=(390, 844)):
        context = browser.new_context(viewport={"width": size[0], "height": size[1]}, storage_state=states[role],
                                      has_touch=size[0] < 500)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(kit.url + path)
        return page

    yield opener
    for c in contexts:
        c.close()


def _sounds(page) -> list[dict]:
    return page.evaluate("() => window.fkSoundLog")


def _scan(page, sample: str, seen: int) -> dict:
    """Show a sample ticket to the simulated scanner; the verdict shown and the sound it asked for (the first
    sound after the click: the one this verdict made)."""
    page.wait_for_selector("body[data-stream=open]", state="attached")  # a verdict before the stream is missed
    page.click(f"#demo-panel [data-sample={sample}]")
    page.wait_for_function(f"() => window.fkSoundLog.length > {seen}")
    page.wait_for_selector("#verdict-full:not([hidden])")
    out = {"word": page.locator("#full-word").inner_text(), "why": page.locator("#full-why").inner_text(),
           "sound": _sounds(page)[seen], "colour": page.locator("#verdict").get_attribute("class")}
    page.click("#verdict-full")
    return out


def test_each_verdict_asks_for_its_own_sound_and_the_flagged_guest_gets_one_clear_message(open_page):
    page = open_page("door", "door")
    page.wait_for_selector("#demo-panel")
    page.select_option("#demo-source", "serial-scanner")
    enable = page.locator("#sound-enable")
    if enable.is_visible():  # a phone's browser holds audio back until this tap (the kiosk's does not)
        enable.tap()
    page.wait_for_function("() => !fkSound.locked()")
    assert not enable.is_visible()
    seen = len(_sounds(page))

    admit = _scan(page, "valid", seen)
    assert admit["word"] == "ADMIT" and admit["sound"]["name"] == "admit" and admit["sound"]["audible"], admit
    flagged = _scan(page, "flagged", seen + 1)
    assert "amber" in flagged["colour"] and flagged["sound"]["name"] == "lead"
    assert flagged["word"] == "ADMIT — CALL A LEAD"  # admitted and counted: the word says both
    assert "Welcome" not in flagged["why"] and "call a lead" in flagged["why"]
    again = _scan(page, "flagged", seen + 2)
    assert again["word"] == "ALREADY IN" and again["sound"]["name"] == "reject"
    assert "call a lead" in again["why"]  # still flagged: the second scan says so too
    refused = _scan(page, "refunded", seen + 3)
    assert "red" in refused["colour"] and refused["sound"]["name"] == "reject"
    assert re.fullmatch(r"\d+ of \d+ in", page.locator(".big-count").inner_text().strip())

    # mute and volume belong to this terminal: kept over a reload, and a muted verdict makes no sound
    page.locator("#sound-volume").fill("40")
    page.click("#sound-mute")
    assert page.locator("#sound-mute").get_attribute("aria-pressed") == "true"
    page.reload()
    page.wait_for_selector("#demo-panel")
    assert page.locator("#sound-mute").get_attribute("aria-pressed") == "true"
    assert page.locator("#sound-volume").input_value() == "40"
    muted = _scan(page, "valid", 0)
    assert muted["sound"]["name"] == "admit" and not muted["sound"]["audible"], muted


def test_a_ticket_that_cannot_be_admitted_says_why_instead_of_offering_admit(open_page):
    page = open_page("door", "door")
    page.fill("#search", "D0001")  # the demo's ticket for another day
    row = page.locator("#results li").first
    row.wait_for()
    assert "Not valid yet" in row.inner_text()
    assert row.locator("button", has_text="Admit").count() == 0
    page.fill("#search", "D0250")  # an ordinary ticket (past the demo panel's samples) is still offered
    page.locator("#results li button", has_text="Admit").first.wait_for()


def test_rehearsal_shows_its_state_apart_from_the_action(open_page):
    page = open_page("lead", "door", (800, 480))
    state, button = page.locator("#rehearsal-state"), page.locator("#rehearsal-btn")
    assert state.inner_text() == "Rehearsal: off" and button.inner_text() == "Start rehearsal"
    button.click()
    page.locator("#rehearsal-state", has_text="Rehearsal: ON").wait_for()
    assert button.inner_text() == "Stop rehearsal" and page.locator("#rehearsal-banner").is_visible()
    button.click()
    page.locator("#rehearsal-state", has_text="Rehearsal: off").wait_for()
    assert not page.locator("#rehearsal-banner").is_visible()


def test_a_sale_confirms_with_a_sound_and_a_lead_refunds_without_typing_their_own_pin(open_page):
    page = open_page("merch", "merch", (800, 480))
    page.wait_for_selector("#products .product[data-product='Sticker']")
    sticker = page.locator("#products .product[data-product='Sticker']")
    sticker.click()
    # the tap shows at once, on the product itself and beside Pay
    assert sticker.locator(".in-cart").inner_text() == "1 in cart"
    assert "1 item" in page.locator("#cart-count").inner_text()
    page.click("#pay")
    page.click("#quick .btn")
    page.click("#confirm-pay")
    page.wait_for_selector("#done-dialog:not([hidden])")
    assert [s["name"] for s in _sounds(page)][-1:] == ["sale"]
    receipt = page.locator("#done-receipt").inner_text()

    lead = open_page("lead", "merch", (800, 480))
    lead.click("#refund-open")
    assert lead.locator("#refund-pin").count() == 0  # a lead is not asked for their own PIN
    lead.fill("#refund-receipt", receipt)
    lead.press("#refund-receipt", "Enter")
    lead.locator("#refund-lines input").first.wait_for()
    lead.fill("#refund-reason", "changed mind")
    lead.click("#refund-go")
    lead.locator("#refund-msg", has_text="give back 2.00").wait_for()


def test_the_header_follows_the_stream_when_a_service_stops_on_every_role(open_page, kit):
    """Last in the module: it stops the pos service (``fieldkit up`` restarts it)."""
    lead = open_page("lead", "", (800, 480))
    merch = open_page("merch", "merch", (800, 480))
    door = open_page("door", "door", (390, 844))
    for page in (lead, merch, door):
        page.wait_for_function("() => document.getElementById('kit-state').dataset.state === 'ok'")
    lead.locator("#readiness-title", has_text="for").wait_for()
    pos_pid = next(int(m) for m in re.findall(r"name=pos pid=(\d+)", kit.log_path.read_text()))
    os.kill(pos_pid, signal.SIGTERM)  # a clean stop publishes offline at once
    # no reload: the lead's header names the service, the card at the top says not ready, both on screen
    lead.locator("#kit-state", has_text="pos").wait_for()
    assert lead.locator("#kit-state").get_attribute("data-state") in ("degraded", "offline")
    lead.locator("#readiness-list li", has_text="pos").wait_for()
    assert "Not ready" in lead.locator("#readiness-title").inner_text()
    # the merch screen, which needs pos, says so in its own words; the door only that the kit is not all well
    merch.wait_for_function("() => document.getElementById('kit-state').dataset.state !== 'ok'")
    assert "Merch" in merch.locator("#kit-state").inner_text()
    door.wait_for_function("() => document.getElementById('kit-state').dataset.state !== 'ok'")
    assert "pos" not in door.locator("#kit-state").get_attribute("title")  # no other screen's detail
    lead.wait_for_function("() => document.getElementById('kit-state').dataset.state === 'ok'", timeout=30_000)


def test_the_door_and_merch_headers_name_the_run_sheets_current_slot(browser, kit, states):
    """The demo run-sheet's first slot is running: every screen's header says so (lead/state, any role)."""
    for role, path in (("door", "door"), ("merch", "merch")):
        context = browser.new_context(viewport={"width": 800, "height": 480}, storage_state=states[role])
        page = context.new_page()
        try:
            page.goto(kit.url + path)
            page.wait_for_function("() => document.getElementById('kit-name').dataset.slot === 'Walk-in beats'",
                                   timeout=10_000)
            assert page.inner_text("#kit-name").startswith("Now: Walk-in beats")
        finally:
            context.close()


def test_a_live_drop_shows_its_price_units_left_and_countdown_on_the_merch_screen(open_page):
    lead = open_page("lead", "merch", (800, 480))
    started = lead.evaluate("""() => fk.post('/api/v1/pos/drops', {name: 'Poster drop', sku: 'POSTER', price: '8.00',
                                                                    quantity: 3, minutes: 10})""")
    assert started["status"] == 201, started
    merch = open_page("merch", "merch", (800, 480))
    strip = merch.locator("#drops .drop[data-drop='Poster drop']")
    strip.wait_for()
    assert re.search(r"DROP Poster drop · POSTER at 8[.,]00 EUR · 3 left · (9|10):\d\d", strip.inner_text())
    merch.click("#products .product[data-product='Poster']")
    merch.wait_for_function("() => /8[.,]00/.test(document.getElementById('cart-total').textContent)")
    merch.click("#pay")
    merch.click("#quick .btn")
    merch.click("#confirm-pay")
    merch.wait_for_selector("#done-dialog:not([hidden])")
    merch.wait_for_function("() => /2 left/.test(document.querySelector('#drops .drop').textContent)")


def test_the_merch_lead_starts_and_stops_a_drop_from_the_lead_screen(open_page):
    lead = open_page("lead", "pos/lead", (800, 480))
    lead.fill("#drop-name", "Sticker drop")
    lead.fill("#drop-sku", "STICKER")
    lead.fill("#drop-price", "-1")
    lead.fill("#drop-quantity", "20")
    lead.click("#drop-start")
    lead.wait_for_function("() => /not negative|not an amount|negative/.test(document.getElementById('drop-msg').textContent)")
    lead.fill("#drop-price", "1.00")
    lead.click("#drop-start")
    lead.wait_for_function("() => /Started on every merch kit/.test(document.getElementById('drop-msg').textContent)")
    row = lead.locator("#drops-table tr", has_text="Sticker drop")
    row.wait_for()
    assert "0/20 sold · open" in row.inner_text()
    row.locator("button", has_text="Stop").click()
    lead.wait_for_function("() => /back at the normal price/.test(document.getElementById('drop-msg').textContent)")
    lead.locator("#drops-table tr", has_text="stopped").wait_for()
    lead.fill("#drop-name", "Members tote")  # members first, from the same form
    lead.fill("#drop-sku", "TOTE")
    lead.fill("#drop-members-minutes", "3")
    lead.fill("#drop-member-types", "VIP, Weekend pass")
    lead.click("#drop-start")
    lead.wait_for_function("() => /Started on every merch kit/.test(document.getElementById('drop-msg').textContent)")
    assert "0/20 sold · members" in lead.locator("#drops-table tr", has_text="Members tote").inner_text()
    lead.locator("#drops-table tr", has_text="Members tote").locator("button", has_text="Stop").click()


def _ticket_of_type(kit, ticket_type: str) -> str:
    import sqlite3

    conn = sqlite3.connect(kit.home / "var" / "kit.db")
    try:
        return conn.execute("SELECT ticket_key FROM checkin_tickets WHERE ticket_type = ? AND status = 'valid'"
                            " AND attention = 0 LIMIT 1", (ticket_type,)).fetchone()[0]
    finally:
        conn.close()


def test_members_first_the_merch_table_scans_a_vip_ticket_for_the_price_and_refuses_a_day_pass(open_page, kit):
    lead = open_page("lead", "merch", (800, 480))
    started = lead.evaluate("""() => fk.post('/api/v1/pos/drops', {name: 'VIP hoodie', sku: 'HOODIE-L', price: '30.00',
                                   quantity: 2, minutes: 10, members_minutes: 5, member_types: ['VIP']})""")
    assert started["status"] == 201 and started["data"]["phase"] == "members", started
    merch = open_page("merch", "merch", (800, 480))
    strip = merch.locator("#drops .drop[data-drop='VIP hoodie']")
    strip.wait_for()
    assert re.search(r"MEMBERS FIRST \(VIP\) [45]:\d\d · VIP hoodie 30[.,]00 EUR · 2 left", strip.inner_text())
    assert strip.locator("button", has_text="Member ticket").is_visible()

    merch.fill("#scan", _ticket_of_type(kit, "Day pass"))  # a code that is no product or pickup: tried as a ticket
    merch.press("#scan", "Enter")
    merch.wait_for_function("() => /a Day pass ticket does not unlock VIP hoodie: members first \\(VIP\\)/"
                            ".test(document.getElementById('message').textContent)")
    vip = _ticket_of_type(kit, "VIP")
    strip.locator("button", has_text="Member ticket").click()
    merch.fill("#scan", vip)
    merch.press("#scan", "Enter")
    merch.wait_for_function("() => /VIP ticket: one HOODIE-L at the members' price/.test(document.getElementById('message').textContent)")
    merch.wait_for_function("() => /30[.,]00/.test(document.getElementById('cart-total').textContent)")
    merch.click("#pay")
    merch.click("#quick .btn")
    merch.click("#confirm-pay")
    merch.wait_for_selector("#done-dialog:not([hidden])")
    merch.wait_for_function("() => /1 left/.test(document.querySelector(\"#drops .drop[data-drop='VIP hoodie']\").textContent)")
    merch.click("#new-sale")
    strip.locator("button", has_text="Member ticket").click()
    merch.fill("#scan", vip)
    merch.press("#scan", "Enter")
    merch.wait_for_function("() => /this ticket already unlocked VIP hoodie/.test(document.getElementById('message').textContent)")
    merch.screenshot(path=str(_shots() / "merch-members-first-800x480.png"))
    phone = open_page("merch", "merch", (360, 740))
    phone.locator("#drops .drop.members").wait_for()
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= 360  # nothing runs off a phone sideways
    phone.screenshot(path=str(_shots() / "merch-members-first-360x740.png"))


def _shots():
    from pathlib import Path

    shots = Path(os.environ.get("FIELDKIT_SCREENSHOTS") or Path(__file__).parents[2] / "build" / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    return shots

