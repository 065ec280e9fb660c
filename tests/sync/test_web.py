"""The lead's sync page and its API through the kit's real web app (Flask test client), with the service running."""

from __future__ import annotations

import re
import threading

import pytest

from kit.service import make_context
from kit.testing import wait_for
from kit.web.app import create_app
from sync.service import run
from tests.sync.conftest import append_events


def signed_in(app, pin: str):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    client.post("/login", data={"pin": pin, "csrf_token": token})
    html = client.get("/sync").get_data(as_text=True)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', html)
    return client, (csrf.group(1) if csrf else token)


@pytest.mark.parametrize("hq_url_db", ["sqlite"], indirect=True)
def test_lead_sees_backlog_and_sync_now_reaches_the_service(ctx, joined, hq, kit_env, listen):
    ctx.config = joined
    app = create_app(ctx)
    door, _ = signed_in(app, kit_env["pins"]["door"])
    assert door.get("/api/v1/sync/state").status_code == 403
    lead, csrf = signed_in(app, kit_env["pins"]["lead"])
    append_events(ctx.db, ctx.ledger, 30)
    html = lead.get("/sync").get_data(as_text=True)
    assert 'id="sync-backlog">30 events' in html and "Sync now" in html
    # Without the service, the button says so instead of pretending.
    r = lead.post("/api/v1/sync/now", json={}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 503 and "not running" in r.json["error"]
    replies = listen("fieldkit/test1/sync/event/now")
    service = make_context("sync", joined)  # the sync service's own process context: its health is sync/health
    assert service.bus.start(wait=5)
    worker = threading.Thread(target=run, args=(service,), daemon=True)
    worker.start()
    try:
        wait_for(lambda: lead.get("/api/v1/sync/state").json["backlog"] == 0, timeout=15, what="backlog uploaded")
        wait_for(lambda: lead.get("/api/v1/sync/state").json["service"] == "ok", timeout=5, what="service health")
        r = lead.post("/api/v1/sync/now", json={}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 202
        wait_for(lambda: any(p.get("id") == r.json["id"] and p["ok"] for _, p in replies.messages), timeout=15,
                 what="the service's answer")
        html = lead.get("/sync").get_data(as_text=True)
        assert "HQ has everything this kit recorded." in html and 'id="sync-backlog">0 events' in html
    finally:
        service.stopping.set()
        worker.join(timeout=10)
        service.bus.stop()
        service.db.close()


def test_sync_now_on_a_kit_that_never_joined(ctx, kit_env):
    app = create_app(ctx)
    lead, csrf = signed_in(app, kit_env["pins"]["lead"])
    r = lead.post("/api/v1/sync/now", json={}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 409 and "fieldkit sync join" in r.json["error"]
    assert "not joined" in lead.get("/sync").get_data(as_text=True)
