"""In a real browser on a running kit: door staff log an incident from the header in a few taps, and a lead
acknowledges and resolves it on the Incidents board."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.browser


def test_door_staff_log_an_incident_from_the_header_and_a_lead_acts_on_the_board(kit_factory, browser, sign_in):
    kit = kit_factory(["web", "status"])
    door = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True).new_page()
    sign_in(door, kit, "door", "/door")
    door.goto(kit.url + "door")
    door.click("#nav-toggle")  # a phone: the pages wait behind Menu
    door.click("#nav-incident")
    door.wait_for_url("**/incident")
    door.click("#categories label:has-text('Medical')")
    door.click("#severities label:has-text('High')")
    door.fill("#note", "Guest feels faint by the bar; water given")
    door.click("#log-incident")
    door.locator("#incident-result", has_text="Logged").wait_for()
    assert door.input_value("#note") == ""  # ready for the next one
    door.click("#log-incident")  # nothing chosen, nothing written: the browser asks for a kind first
    assert door.evaluate("() => document.querySelector('input[name=category]').validity.valueMissing")

    lead = browser.new_context(viewport={"width": 800, "height": 480}).new_page()
    sign_in(lead, kit, "lead", "/lead/incidents")
    lead.goto(kit.url + "lead/incidents")
    card = lead.locator("#col-open .incident", has_text="Guest feels faint by the bar")
    assert "Medical" in card.inner_text() and "door at" in card.inner_text()
    card.locator("button[data-act=ack]").click()
    lead.locator("#col-acknowledged .incident", has_text="Guest feels faint").wait_for()
    card = lead.locator("#col-acknowledged .incident", has_text="Guest feels faint")
    assert "Acknowledged by lead at" in card.inner_text()
    card.locator("button[data-act=open-resolve]").click()
    card.locator("input[name=note]").fill("First aid team took over")
    card.locator("form.resolve button[type=submit]").click()
    lead.locator("#col-resolved .incident", has_text="First aid team took over").wait_for()

    listed = json.loads(kit.fieldkit("incident", "list", "--json").stdout)["incidents"]
    assert [(i["category"], i["severity"], i["by"], i["state"]) for i in listed] == [
        ("medical", "high", "door", "resolved")]
    assert listed[0]["resolved"]["note"] == "First aid team took over"
