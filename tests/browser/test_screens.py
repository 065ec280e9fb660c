"""Every page at the Pi's 7-inch display (800x480), a 1024x600 tablet and two phones (390x844, 360x740):
no sideways scrolling, the page's primary action on screen without scrolling, touch targets of 44 px,
and no serious or critical axe-core violation. A screenshot of each page and size is kept (path printed).

One simulated kit (every service, demo data) and one browser serve the whole module.
"""

from __future__ import annotations

import itertools

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("screens")]  # one kit: one worker


def _add_sticker(page):
    page.wait_for_selector("#products .product[data-product='Sticker']")
    page.click("#products .product[data-product='Sticker']")
    page.locator("#cart li").first.wait_for()


def _pay_dialog(page):
    _add_sticker(page)
    page.click("#pay")
    page.wait_for_selector("#pay-dialog:not([hidden])")


def _sold(page):
    _pay_dialog(page)
    page.click("#quick .btn")  # "Exact"
    page.click("#confirm-pay")
    page.wait_for_selector("#done-dialog:not([hidden])")
    page.locator("#receipt-preview .receipt-paper").wait_for()


_SAMPLES = itertools.cycle(["flagged", "valid", "refunded", "wrong_day"])  # the scanner skips a code seen just before


def _door_verdict(page):
    page.wait_for_selector("#demo-panel")
    page.wait_for_selector("body[data-stream=open]", state="attached")  # a verdict before the stream is missed
    # This page's layout is under test, not the scan path (tests/checkin cover that): in the full suite one
    # sample's verdict sometimes never reached this size's page, so a second sample is shown before failing.
    for _attempt in range(2):
        page.click(f"#demo-panel [data-sample={next(_SAMPLES)}]")
        try:
            page.wait_for_selector("#verdict-full:not([hidden])", timeout=12_000)  # scanner → checkin → bus → web
            return
        except PlaywrightTimeout:
            pass
    page.wait_for_selector("#verdict-full:not([hidden])", timeout=1)


def _door_check(page) -> str:
    """The attendee found by search, open for the second check; answers the hit's line."""
    page.fill("#search", "anna")
    hit = page.locator("#results li:has(button.ok)").first
    hit.wait_for()
    info = hit.locator(".info").inner_text()
    hit.locator("button").click()
    page.wait_for_selector("#admit-dialog[open]")
    return info


def _door_reissued(page):
    _name, _type, order_code, email = _door_check(page).split(" · ")[:4]
    page.fill("#check-order_code", order_code)
    page.fill("#check-email", email)
    page.click("#lead-part summary")
    page.fill("#admit-reason", "code shared online")
    page.click("#reissue-btn")
    page.wait_for_selector("#reissued-dialog[open] #reissued-qr svg")


def _x_report(page):
    # the X report of the open shift; run alone (no sale opened one earlier), the lead opens it here
    page.wait_for_function("() => /Shift|No shift/.test(document.getElementById('shift-state').textContent)")
    if page.is_visible("#shift-open-form"):
        page.click("#open-shift")
    page.locator("#report .receipt-paper").wait_for()


def _services_seen(page):
    page.wait_for_selector("#svc-web.ok")


def _incidents_logged(page):
    """Two incidents on the board, one of them acknowledged (the form's own API, as a person would)."""
    page.evaluate("""async () => {
      if ((await fk.get("/api/v1/lead/incidents")).data.incidents.length) return;  // once for every size
      const a = await fk.post("/api/v1/lead/incidents", {category: "safety", severity: "high",
                               note: "Barrier at gate 2 is loose: taped off for now"});
      await fk.post("/api/v1/lead/incidents", {category: "lost_property", severity: "low",
                    note: "Blue scarf handed in at the merch table", concerns: "e2e-0004"});
      await fk.post("/api/v1/lead/incidents/" + a.data.id + "/ack", {});
    }""")
    page.reload()
    page.wait_for_selector("#col-open .incident")


# name, role (None: signed out), path, setup, must be on screen without scrolling, must not be clipped sideways
PAGES = [
    ("login", None, "login", None, ["#pin", "button[type=submit]"], []),
    ("door", "door", "door", None, ["#verdict", "#search"], []),
    ("door-verdict", "door", "door", _door_verdict, ["#full-word", "#full-why"], ["#verdict-full"]),
    ("door-lead", "lead", "door", None, ["#verdict", "#search"], []),
    ("door-check", "door", "door", _door_check, ["#check-order_code", "#admit-confirm"], ["#admit-dialog"]),
    ("door-reissued", "lead", "door", _door_reissued, ["#reissued-qr svg", "#reissued-code", "#reissued-close"],
     ["#reissued-dialog"]),
    ("guestlist", "door", "door/guestlist", None, ["h1"], ["table"]),
    ("rehearsal-sheet", "lead", "door/rehearsal-sheet", None, ["h1"], []),
    # landscape: the cart's lines too (two columns); a phone shows the tap on the product and the Pay bar
    ("merch", "merch", "merch", _add_sticker, ["#products .product .in-cart", "landscape:#cart li", "#cart-total", "#pay"], []),
    ("merch-pay", "merch", "merch", _pay_dialog, ["#pay-total", "#tendered", "#change-due", "#confirm-pay"], []),
    ("merch-receipt", "merch", "merch", _sold, ["#done-change", "#new-sale"], ["#receipt-preview"]),
    ("merch-lead", "lead", "pos/lead", _x_report, ["#shift-state"], ["#report"]),
    ("dashboard", "lead", "", _services_seen, ["#readiness", "#kit-state"], []),
    ("documents", "lead", "documents", None, ["#kind", "#upload button[type=submit]"], []),
    ("update", "lead", "update", None, ["#running", "#file", "#upload button[type=submit]"], []),
    ("power", "lead", "power", None, ["#tile-battery"], []),
    ("sync", "lead", "sync", None, ["#sync-backlog-tile"], []),
    ("sync-site", "lead", "sync/site", None, ["h1"], []),
    ("cues", "lead", "cues", None, ["#stop-all", "#go"], []),
    ("network", "lead", "network", None, ["#hotspot-line"], []),
    ("lead-now", "lead", "lead", None, ["#countdown", "#next-name", "#btn-next", "#btn-late"], []),
    ("lead-numbers", "lead", "lead/numbers", None, ["h1", ".fig:first-child"], []),
    ("pickups", "merch", "merch/pickups", None, ["#due"], []),
    ("signup", "door", "signup", None, ["#email", "#consent", "#add"], []),
    ("incident", "door", "incident", None, ["#categories", "#severities", "#log-incident"], []),
    ("lead-incidents", "lead", "lead/incidents", _incidents_logged, ["#new-incident", "#col-open .incident"], []),
]


@pytest.fixture(scope="module")
def kit(module_kit_factory):
    return module_kit_factory(None)


@pytest.fixture(scope="module")
def states(browser, kit, screens):
    return screens.signed_in_states(browser, kit)


@pytest.mark.parametrize("size", [pytest.param(s, id=f"{s[0]}x{s[1]}") for s in
                                  [(800, 480), (1024, 600), (390, 844), (360, 740)]])
@pytest.mark.parametrize("name, role, path, setup, primary, unclipped", PAGES, ids=[p[0] for p in PAGES])
def test_page_fits_the_screen_and_passes_axe(browser, kit, states, screens, shots, size, name, role, path, setup,
                                              primary, unclipped):
    context = browser.new_context(viewport={"width": size[0], "height": size[1]}, bypass_csp=True,
                                  storage_state=states[role] if role else None, has_touch=size[0] < 500)
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        page.goto(kit.url + path)
        page.wait_for_load_state()
        if setup:
            setup(page)
        page.wait_for_timeout(150)  # let the live stream's first messages land
        page.screenshot(path=str(shots / f"{name}-{size[0]}x{size[1]}.png"))
        problems = []
        wide = screens.overflow(page)
        if wide["excess"]:
            problems.append(f"scrolls sideways by {wide['excess']} px: {wide['offenders']}")
        for sel in primary:
            if sel.startswith("landscape:"):
                if size[0] < size[1]:
                    continue
                sel = sel.split(":", 1)[1]
            why = screens.on_screen(page, sel)
            if why:
                problems.append(f"{sel} {why}")
        for sel in unclipped:
            why = screens.clipped(page, sel)
            if why:
                problems.append(f"{sel} clipped: {why}")
        header = page.evaluate("() => { const h = document.getElementById('top'); return h ? h.getBoundingClientRect().height : 0; }")
        if header > 64:
            problems.append(f"the header takes more than one row: {header:.0f} px")
        hidden = screens.hidden_but_taking_space(page)
        if hidden:
            problems.append(f"hidden but taking space: {hidden}")
        small = screens.small_targets(page)
        if small:
            problems.append(f"touch targets under 44 px: {small}")
        violations = screens.axe(page)
        screens.record(name, size, violations)
        bad = screens.serious(violations)
        if bad:
            problems.append("axe: " + "; ".join(f"{v['impact']} {v['id']} ({v['help']}): {v['nodes']}" for v in bad))
        assert not problems, f"{name} at {size[0]}x{size[1]}:\n  " + "\n  ".join(problems)
    finally:
        context.close()


@pytest.mark.parametrize("size", [(800, 480), (390, 844)], ids=["800x480", "390x844"])
def test_the_leads_pages_are_one_tap_away_in_the_menu(browser, kit, states, screens, size):
    context = browser.new_context(viewport={"width": size[0], "height": size[1]}, storage_state=states["lead"])
    page = context.new_page()
    try:
        page.goto(kit.url)
        power = page.locator("#nav a", has_text="Power")
        assert not power.is_visible()  # seven links do not fit one row here: they wait behind Menu
        page.click("#nav-toggle")
        assert page.locator("#nav-toggle").get_attribute("aria-expanded") == "true"
        assert screens.on_screen(page, "#nav form button") == ""  # Sign out, the last entry, on screen too
        power.click()
        page.wait_for_url("**/power")
    finally:
        context.close()


def test_dashboard_and_guest_list_say_it_in_plain_words(browser, kit, states):
    context = browser.new_context(viewport={"width": 390, "height": 844}, storage_state=states["lead"])
    page = context.new_page()
    try:
        page.goto(kit.url)
        page.locator("#sum-sync", has_text="not joined").wait_for(timeout=20_000)  # no HQ: not "all sent"
        page.goto(kit.url + "door/guestlist")
        assert page.locator("h1").inner_text() == "Guest list — e2e"  # the event's name (the site's without one)
    finally:
        context.close()
