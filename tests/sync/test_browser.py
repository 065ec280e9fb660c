"""A lead joins the kit to HQ, opens the sync page in a real browser and taps "Sync now"."""

from __future__ import annotations

import pytest

from kit.clock import KitClock
from kit.db import Database
from kit.ledger import Ledger
from sync.hq import store
from sync.hq.testing import HQServer

pytestmark = pytest.mark.browser


def test_sync_now_uploads_the_backlog_and_the_page_follows_live(kit_factory, page, sign_in, tmp_path):
    engine = store.make_engine(f"sqlite:///{tmp_path / 'hq.db'}")
    hq = HQServer(engine)
    try:
        kit = kit_factory(["web", "status", "sync"])
        kit_id = kit.url.split(":")[-1].strip("/")
        kit_id = f"e2e{kit_id}"
        token = store.add_kit(engine, kit_id, "e2e")
        db = Database(kit.home / "var" / "kit.db")
        ledger = Ledger(kit_id, KitClock(kit.home / "var"))
        with db.transaction() as conn:
            for n in range(40):
                ledger.append(conn, "pos.sale", {"n": n, "total_cents": 500})
        db.close()
        joined = kit.fieldkit("sync", "join", hq.url, token)
        assert "HQ answers and knows this kit" in joined.stdout
        sign_in(page, kit, "lead", "/sync")
        page.goto(kit.url + "sync")
        backlog = page.locator("#sync-backlog")
        assert int(backlog.inner_text().split()[0]) >= 40
        page.click("#sync-now")
        page.locator("#sync-backlog", has_text="0 events").wait_for(timeout=20_000)  # live, without a reload
        page.locator("#sync-all-there", has_text="HQ has everything").wait_for()
        assert page.locator("#sync-online").inner_text() == "reachable"
        assert store.count_events(engine, kit_id) >= 40
    finally:
        hq.stop()
        engine.dispose()
