"""The kiosk terminal (kit/web/kiosk.py) through Flask's test client on a real kit database: the setup
slip only over loopback, a PIN on the kit's screen that stays signed in past the idle timeout and the
session cookie, a copied device cookie worthless from a phone, and a lead signing the screen out."""

from __future__ import annotations

import re

import pytest

from kit.secrets import Secrets
from kit.web import kiosk


def client_at(app, address: str = "127.0.0.1"):
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = address
    return c


def token_of(client, path: str = "/login") -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(client, pin: str, next_url: str = "/kiosk"):
    return client.post("/login", data={"pin": pin, "csrf_token": token_of(client), "next": next_url})


@pytest.fixture
def lead_pin_set(config):
    Secrets(config.secrets_dir).set_pin("lead", "24681357")
    return "24681357"


def terminals(ctx) -> list[dict]:
    return [dict(r) for r in ctx.db.query("SELECT id, role, signed_out_by FROM kit_kiosk_terminals ORDER BY id")]


def test_slip_shows_the_first_lead_pin_on_the_kits_screen_only(app, kit_env):
    screen = client_at(app)
    first = screen.get("/kiosk")
    assert first.status_code == 302 and first.headers["Location"].endswith("/kiosk/slip")
    page = screen.get("/kiosk/slip").get_data(as_text=True)
    assert kit_env["pins"]["lead"] in page and "<svg" in page
    # a phone on the hotspot, a proxy in front, or a rebinding host name: nothing
    assert client_at(app, "10.42.0.7").get("/kiosk/slip").status_code == 404
    assert client_at(app, "10.42.0.7").get("/kiosk").status_code == 404
    proxied = client_at(app).get("/kiosk/slip", headers={"X-Forwarded-For": "10.42.0.7"})
    assert proxied.status_code == 404
    assert client_at(app).get("/kiosk/slip", headers={"Host": "evil.example:8080"}).status_code == 404
    assert kit_env["pins"]["lead"] not in client_at(app, "10.42.0.7").get("/login").get_data(as_text=True)


def test_after_the_lead_sets_a_pin_the_slip_gives_way_to_the_pin_pad(app, kit_env, lead_pin_set):
    screen = client_at(app)
    assert screen.get("/kiosk/slip").headers["Location"].endswith("/kiosk")
    r = screen.get("/kiosk")
    assert r.headers["Location"].endswith("/login?next=/kiosk")
    cookie = screen.get_cookie(kiosk.COOKIE)
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"


def test_a_pin_on_the_screen_stays_signed_in_without_the_session_cookie(app, ctx, kit_env, lead_pin_set):
    screen = client_at(app)
    screen.get("/kiosk")
    login = screen.get("/login").get_data(as_text=True)
    assert "/static/kiosk.css" in login and "/static/kiosk.js" in login  # kiosk-only: no zoom, no selection
    r = sign_in(screen, kit_env["pins"]["door"])
    assert r.status_code == 302
    assert screen.get("/kiosk").headers["Location"].endswith("/door")
    assert [t["role"] for t in terminals(ctx)] == ["door"]
    door_page = screen.get("/door")
    assert door_page.status_code == 200
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', door_page.get_data(as_text=True)).group(1)
    # The idle timeout passes / the session cookie expires; the page on screen still has its old form token.
    screen.delete_cookie(app.config["SESSION_COOKIE_NAME"])
    assert screen.get("/door").status_code == 200
    assert screen.get("/kiosk/state").get_json() == {"kiosk": True, "signed_in": True, "slip": False}
    r = screen.post("/api/v1/checkin/scan", json={"payload": "NOT-A-TICKET"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.get_json().get("code") != "csrf", r.get_data(as_text=True)
    stale = screen.post("/api/v1/checkin/scan", json={"payload": "NOT-A-TICKET"}, headers={"X-CSRF-Token": "old"})
    assert stale.get_json()["code"] == "csrf"  # the check above could fail


def test_the_device_cookie_is_worth_nothing_from_a_phone(app, kit_env, lead_pin_set):
    screen = client_at(app)
    screen.get("/kiosk")
    sign_in(screen, kit_env["pins"]["lead"])
    token = screen.get_cookie(kiosk.COOKIE).value
    phone = client_at(app, "10.42.0.9")
    phone.set_cookie(kiosk.COOKIE, token)
    assert phone.get("/").headers["Location"].endswith("/login")
    assert phone.get("/api/v1/status").status_code == 401
    # and phones' pages never get the kiosk's stylesheet
    assert "/static/kiosk.css" not in phone.get("/login").get_data(as_text=True)


def test_a_lead_signs_the_screen_out_from_the_dashboard(app, ctx, kit_env, lead_pin_set):
    screen = client_at(app)
    screen.get("/kiosk")
    sign_in(screen, kit_env["pins"]["door"])
    assert screen.get("/door").status_code == 200
    lead = client_at(app, "10.42.0.3")
    sign_in(lead, lead_pin_set, next_url="/")
    dashboard = lead.get("/").get_data(as_text=True)
    assert "Sign out this screen" in dashboard and ">door<" in dashboard
    terminal_id = terminals(ctx)[0]["id"]
    form_token = re.search(rf'/kiosk/terminals/{terminal_id}/sign-out">\s*<input type="hidden" name="csrf_token" '
                           r'value="([^"]+)"', dashboard).group(1)
    r = lead.post(f"/kiosk/terminals/{terminal_id}/sign-out", data={"csrf_token": form_token})
    assert r.status_code == 302
    assert terminals(ctx)[0]["role"] is None and terminals(ctx)[0]["signed_out_by"] == "a lead"
    assert screen.get("/door").headers["Location"].startswith("/login")  # the screen's own session went too
    assert screen.get("/kiosk/state").get_json()["signed_in"] is False
    assert "No kit screen is signed in" in lead.get("/").get_data(as_text=True)
    # the same screen signs in again with the next PIN (same terminal, no new device)
    sign_in(screen, kit_env["pins"]["merch"])
    assert [t["role"] for t in terminals(ctx)] == ["merch"]


def test_sign_out_on_the_screen_signs_the_terminal_out(app, ctx, kit_env, lead_pin_set):
    screen = client_at(app)
    screen.get("/kiosk")
    sign_in(screen, kit_env["pins"]["door"])
    csrf = token_of(screen, "/door")
    assert screen.post("/logout", data={"csrf_token": csrf}).status_code == 302
    assert terminals(ctx)[0]["role"] is None and terminals(ctx)[0]["signed_out_by"] == "the screen"
    assert screen.get("/door").status_code == 302


def test_a_role_that_cannot_see_the_kiosk_page_goes_to_its_own(app, ctx, kit_env, lead_pin_set, monkeypatch):
    monkeypatch.setitem(ctx.config.values, "kiosk.page", "/merch")
    screen = client_at(app)
    screen.get("/kiosk")
    sign_in(screen, kit_env["pins"]["door"])
    assert screen.get("/kiosk").headers["Location"].endswith("/door")
    sign_in(screen, kit_env["pins"]["merch"])
    assert screen.get("/kiosk").headers["Location"].endswith("/merch")


def test_the_service_worker_may_answer_for_the_whole_kit(app):
    r = client_at(app).get("/kiosk/sw.js")
    assert r.status_code == 200 and r.headers["Service-Worker-Allowed"] == "/"
    assert "kiosk-starting.html" in r.get_data(as_text=True)
