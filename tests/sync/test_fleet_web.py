"""HQ's fleet page in a real browser at the Pi's display, a tablet and two phones: fits, reads, passes axe."""

from __future__ import annotations

import base64

import pytest

from sync.client import HQClient
from sync.hq import store
from sync.hq.testing import HQServer
from tests.browser import conftest as screens

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def fleet_hq(tmp_path_factory):
    engine = store.make_engine(f"sqlite:///{tmp_path_factory.mktemp('fleet') / 'hq.db'}")
    hq = HQServer(engine)
    for n, (site, version, battery, trusted) in enumerate(
        [
            ("market", "0.2.0", 81.0, True),
            ("market", "0.1.0", 12.0, True),
            ("harbour-festival", "0.2.0", None, False),
        ]
    ):
        kit = f"kit-number-{n}"
        client = HQClient(hq.url, store.add_kit(engine, kit, site), kit)
        client.post_status(
            {
                "version": version,
                "arch": "aarch64",
                "battery_percent": battery,
                "backlog": 40 * n,
                "lag_seconds": 90 * n,
                "clock_trusted": trusted,
            }
        )
        client.close()
    store.add_kit(engine, "spare", "market")
    yield hq, "Basic " + base64.b64encode(f"alice:{store.add_admin(engine, 'alice')}".encode()).decode()
    hq.stop()
    engine.dispose()


@pytest.mark.parametrize("size", [pytest.param(s, id=f"{s[0]}x{s[1]}") for s in screens.SIZES])
def test_the_fleet_page_fits_every_screen(browser, fleet_hq, size):
    hq, auth = fleet_hq
    context = browser.new_context(
        viewport={"width": size[0], "height": size[1]},
        bypass_csp=True,
        extra_http_headers={"Authorization": auth},
    )
    page = context.new_page()
    try:
        page.goto(hq.url + "/fleet")
        page.screenshot(
            path=str(screens.screenshot_dir() / f"hq-fleet-{size[0]}x{size[1]}.png"), full_page=True
        )
        assert page.locator("#fleet-summary").inner_text() == "4 kits, 3 reported; versions: 0.1.0, 0.2.0"
        row = page.locator("#kit-kit-number-1")
        assert "12 %" in row.inner_text() and "40 events" in row.inner_text()
        assert "NOT TRUSTED" in page.locator("#kit-kit-number-2").inner_text()
        assert "never" in page.locator("#kit-spare").inner_text()
        problems = []
        wide = screens.overflow(page)
        if wide["excess"]:
            problems.append(f"scrolls sideways by {wide['excess']} px: {wide['offenders']}")
        for sel in ("h1", "#fleet-summary"):
            why = screens.on_screen(page, sel)
            if why:
                problems.append(f"{sel} {why}")
        bad = screens.serious(screens.axe(page))
        if bad:
            problems.append(
                "axe: " + "; ".join(f"{v['impact']} {v['id']} ({v['help']}): {v['nodes']}" for v in bad)
            )
        assert not problems, f"fleet at {size[0]}x{size[1]}:\n  " + "\n  ".join(problems)
    finally:
        context.close()
