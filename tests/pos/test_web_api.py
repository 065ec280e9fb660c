"""The pos JSON API through Flask's test client: roles, sales, idempotency, refunds with a lead PIN, shifts."""

from __future__ import annotations

import re

import pytest

from kit.web.app import create_app


@pytest.fixture
def client(ctx, pos_kit):
    ctx.config = pos_kit.config
    app = create_app(ctx)
    app.testing = True
    return app.test_client()


def _sign_in(client, pin) -> str:
    html = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)
    client.post("/login", data={"pin": pin, "csrf_token": token})
    page = client.get("/merch").get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def _post(client, csrf, url, body):
    return client.post(url, json=body, headers={"X-CSRF-Token": csrf})


SALE = {"items": [{"sku": "TS-L", "qty": 1}, {"sku": "STICKER", "qty": 2}],
        "payments": [{"method": "cash", "amount": "50.00"}], "idempotency_key": "web-key-000001"}


def test_merch_sells_and_sees_change_and_preview(client, kit_env):
    assert client.get("/api/v1/pos/catalogue").status_code == 401
    csrf = _sign_in(client, kit_env["pins"]["merch"])
    cat = client.get("/api/v1/pos/catalogue").json
    assert {g["name"] for g in cat["products"]} >= {"T-shirt", "Hoodie", "Sticker"}
    r = _post(client, csrf, "/api/v1/pos/sales", SALE)
    assert r.status_code == 201
    assert r.json["receipt"] == "test1-1" and r.json["change_cents"] == 2100
    assert "Receipt test1-1" in r.json["preview_html"] and "CHANGE" in r.json["preview_html"]
    qr_url = f"/api/v1/pos/sales/{r.json['sale']['id']}/qr.svg"
    assert f'<img src="{qr_url}"' in r.json["preview_html"]  # the receipt's QR code drawn, not described
    qr = client.get(qr_url)
    assert qr.status_code == 200 and qr.mimetype == "image/svg+xml" and "<svg" in qr.get_data(as_text=True)
    assert client.get("/api/v1/pos/sales/not-a-sale/qr.svg").status_code == 404
    again = _post(client, csrf, "/api/v1/pos/sales", SALE)
    assert again.status_code == 200 and again.json["replayed"] and again.json["receipt"] == "test1-1"
    clash = _post(client, csrf, "/api/v1/pos/sales", {**SALE, "items": [{"sku": "TS-M", "qty": 1}]})
    assert clash.status_code == 409 and "different cart" in clash.json["error"]
    bad = _post(client, csrf, "/api/v1/pos/sales", {"items": [{"sku": "TS-L", "qty": -1}], "payments": []})
    assert bad.status_code == 400 and "at least 1" in bad.json["error"]
    assert client.post("/api/v1/pos/sales", json=SALE).status_code == 400  # no CSRF token
    got = client.get(f"/api/v1/pos/sales/{r.json['sale']['id']}").json
    assert got["sale"]["receipt"] == "test1-1" and got["print"]["status"] == "queued"
    assert client.get("/api/v1/pos/sales/test1-1").status_code == 200
    assert client.get("/api/v1/pos/sales/nope").status_code == 404
    assert client.get("/api/v1/pos/shift").status_code == 403  # lead only
    q = _post(client, csrf, "/api/v1/pos/quote", {"items": SALE["items"], "discount": {"percent": "10", "reason": "crew"}})
    assert q.status_code == 200 and q.json["total_cents"] == 2610 and q.json["discount_cents"] == 290
    assert _post(client, csrf, "/api/v1/pos/quote", {"items": SALE["items"], "discount": {"percent": "10"}}).status_code == 400
    stats = client.get("/api/v1/pos/stats").json["per_hour"]
    assert sum(b["count"] for b in stats) == 1


def test_refund_needs_a_lead(client, kit_env):
    csrf = _sign_in(client, kit_env["pins"]["merch"])
    sale = _post(client, csrf, "/api/v1/pos/sales", SALE).json["sale"]
    url = f"/api/v1/pos/sales/{sale['id']}/refund"
    body = {"reason": "wrong size", "items": [{"line": 1, "qty": 1}]}
    assert _post(client, csrf, url, body).status_code == 403
    assert _post(client, csrf, url, {**body, "lead_pin": kit_env["pins"]["merch"]}).status_code == 403
    r = _post(client, csrf, url, {**body, "lead_pin": kit_env["pins"]["lead"]})
    assert r.status_code == 201 and r.json["refund"]["total_cents"] == 2500
    over = _post(client, csrf, url, {"reason": "x", "items": [{"line": 2, "qty": 3}], "lead_pin": kit_env["pins"]["lead"]})
    assert over.status_code == 400 and "left to refund" in over.json["error"]


def test_lead_closes_the_shift_by_denomination(client, kit_env):
    csrf = _sign_in(client, kit_env["pins"]["lead"])
    assert _post(client, csrf, "/api/v1/pos/shift/open", {"float": "50.00"}).status_code == 200
    _post(client, csrf, "/api/v1/pos/sales", SALE)
    assert _post(client, csrf, "/api/v1/pos/shift/cash", {"amount": "10.00", "out": True, "reason": "safe"}).status_code == 200
    x = client.get("/api/v1/pos/shift").json
    assert x["cash"]["expected_cents"] == 5000 + 2900 - 1000
    z = _post(client, csrf, "/api/v1/pos/shift/close", {"denominations": {"5000": 1, "1000": "1", "200": 4}})
    assert z.status_code == 200 and z.json["counted_cents"] == 6800 and z.json["difference_cents"] == -100
    assert "Z REPORT" in z.json["preview_html"]
    edit = _post(client, csrf, "/api/v1/pos/catalogue/TS-L", {"price": "20.00"})
    assert edit.status_code == 200 and edit.json["product"]["price_cents"] == 2000
    assert _post(client, csrf, "/api/v1/pos/catalogue/TS-L", {"price": "-1"}).status_code == 400
    assert client.get("/merch").status_code == 200 and client.get("/pos/lead").status_code == 200
    spec = client.get("/api/v1/openapi.json").json["paths"]
    assert "/api/v1/pos/sales" in spec and "/api/v1/pos/sales/{sale_id}/refund" in spec


MALFORMED = [
    ("/api/v1/pos/sales", {"items": [{"sku": "TS-L", "discount": {"amount_cents": True, "reason": "x"}}]}),
    ("/api/v1/pos/sales", {"items": [{"sku": "TS-L", "discount": {"percent": [1], "reason": "x"}}]}),
    ("/api/v1/pos/sales", {"items": [{"sku": ["TS-L"]}]}),
    ("/api/v1/pos/sales", {"items": [{"sku": "TS-L"}], "payments": [{"method": "card", "amount": "25.00", "last4": "12x4"}]}),
    ("/api/v1/pos/sales", {"items": [{"sku": "TS-L"}], "payments": "cash"}),
    ("/api/v1/pos/sales", "not json at all"),
    ("/api/v1/pos/sales/test1-1/refund", {"reason": "x", "items": 5}),
    ("/api/v1/pos/sales/test1-1/refund", {"reason": "x", "items": [{"line": "1", "qty": 1}]}),
    ("/api/v1/pos/sales/test1-1/refund", {"reason": "x", "amount": 5}),
    ("/api/v1/pos/sales/test1-1/refund", {"reason": "x", "method": 7}),
    ("/api/v1/pos/sales/test1-1/refund", {"reason": "x", "idempotency_key": 12345678}),
    ("/api/v1/pos/shift/close", {"denominations": {"2000": 1.5}}),
    ("/api/v1/pos/shift/close", {"denominations": {"abc": 1}}),
    ("/api/v1/pos/shift/close", {"counted": "lots"}),
    ("/api/v1/pos/shift/cash", {"amount": "1e9", "reason": "x"}),
    ("/api/v1/pos/catalogue/TS-L", {"stock": {"a": 1}}),
    ("/api/v1/pos/catalogue/TS-L", {"active": "perhaps"}),
    ("/api/v1/pos/printer/sim", {"paper": "soggy"}),
]


def test_malformed_requests_get_a_clear_4xx_and_change_nothing(client, kit_env):
    csrf = _sign_in(client, kit_env["pins"]["lead"])
    _post(client, csrf, "/api/v1/pos/sales", SALE)
    db = client.application.extensions["fieldkit"].db
    events = db.scalar("SELECT COUNT(*) FROM events")
    for url, body in MALFORMED:
        if isinstance(body, str):
            r = client.post(url, data=body, headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"})
        else:
            r = _post(client, csrf, url, body)
        assert 400 <= r.status_code < 500, (url, body, r.get_data(as_text=True))
        assert r.json["error"], (url, body)
    assert db.scalar("SELECT COUNT(*) FROM events") == events
