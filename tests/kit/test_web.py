"""Web shell through Flask's test client: sign-in, roles, CSRF, throttling, OpenAPI, clock, uploads."""

import re

import pytest


@pytest.fixture
def client(app):
    return app.test_client()


def csrf_from(html: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def sign_in(client, pin):
    page = client.get("/login").get_data(as_text=True)
    return client.post("/login", data={"pin": pin, "csrf_token": csrf_from(page)})


def test_health_answers_without_sign_in(client):
    r = client.get("/api/v1/health")
    assert r.status_code == 200 and r.json["ok"] is True and r.json["kit"] == "test1"


def test_each_role_lands_on_its_page_and_cannot_reach_the_lead_dashboard(client, kit_env):
    r = sign_in(client, kit_env["pins"]["door"])
    assert r.status_code == 302 and r.headers["Location"] == "/door"
    assert client.get("/api/v1/status").status_code == 403
    client.get("/")  # a door user asking for the dashboard is sent to the door page
    assert client.get("/").headers["Location"] == "/door"


def test_lead_sees_the_dashboard_and_what_stands_between_the_kit_and_ready(client, kit_env):
    assert sign_in(client, kit_env["pins"]["lead"]).headers["Location"] == "/"
    html = client.get("/").get_data(as_text=True)
    assert "Kit health" in html and 'id="svc-web"' in html
    assert "Not ready for testsite yet" in html
    assert "no an attendee list" not in html and "no a catalogue" not in html
    assert "attendee list (or ticket keys) yet" in html and "catalogue yet" in html
    assert client.get("/api/v1/status").json["kit"] == "test1"


def test_api_needs_sign_in(client):
    r = client.get("/api/v1/status")
    assert r.status_code == 401 and r.json["code"] == "unauthenticated"


def test_post_without_csrf_token_is_refused(client, kit_env):
    sign_in(client, kit_env["pins"]["lead"])
    r = client.post("/api/v1/clock", json={"now_ms": 1_800_000_000_000})
    assert r.status_code == 400 and r.json["code"] == "csrf"


def test_wrong_pins_are_refused_then_slowed_down(client, kit_env):
    codes = [sign_in(client, "000000").status_code for _ in range(4)]
    assert codes[:3] == [401, 401, 401]
    r = sign_in(client, kit_env["pins"]["lead"])  # even the right PIN must wait now
    assert r.status_code == 429
    assert re.search(r"Wait \d+ s and try again", r.get_data(as_text=True)) and int(r.headers["Retry-After"]) >= 1


def test_lead_sets_the_clock_from_the_phone(client, kit_env, ctx):
    sign_in(client, kit_env["pins"]["lead"])
    token = csrf_from(client.get("/").get_data(as_text=True))
    import time

    phone_ms = int((time.time() + 7200) * 1000)
    r = client.post("/api/v1/clock", json={"now_ms": phone_ms}, headers={"X-CSRF-Token": token})
    assert r.status_code == 200 and r.json["method"] == "offset"
    assert r.json["clock"]["synced"] is True and 7199 < r.json["clock"]["offset_seconds"] < 7201
    assert client.post("/api/v1/clock", json={"now_ms": 5}, headers={"X-CSRF-Token": token}).status_code == 400


def test_openapi_lists_every_api_route(client, app):
    spec = client.get("/api/v1/openapi.json").json
    routes = {re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", r.rule) for r in app.url_map.iter_rules()
              if r.rule.startswith("/api/v1/")}
    assert routes == set(spec["paths"])
    assert spec["paths"]["/api/v1/clock"]["post"]["requestBody"]


def test_sessions_expire(client, kit_env, ctx, app):
    sign_in(client, kit_env["pins"]["lead"])
    with client.session_transaction() as s:
        s["seen"] -= ctx.config["web.session_minutes"] * 60 + 1
    assert client.get("/api/v1/status").status_code == 401


def test_unknown_api_route_is_json(client):
    r = client.get("/api/v1/nope")
    assert r.status_code == 404 and r.json["code"] == "not_found"


def test_lead_uploads_a_catalogue_sees_the_preview_then_imports_it(client, kit_env, ctx):
    import io

    from kit.documents import current_documents

    sign_in(client, kit_env["pins"]["lead"])
    token = csrf_from(client.get("/documents").get_data(as_text=True))
    csv = b"sku,name,price,stock\nTEE-L,T-shirt L,25.00,10\nBAD,Broken,twenty,1\n"
    r = client.post("/api/v1/documents/preview", headers={"X-CSRF-Token": token},
                    data={"kind": "pos.catalogue", "file": (io.BytesIO(csv), "catalogue.csv")},
                    content_type="multipart/form-data")
    assert r.status_code == 200, r.json
    assert r.json["report"]["imported"] == 1 and len(r.json["report"]["skipped"]) == 1
    assert current_documents(ctx.db) == []  # a preview changes nothing
    r = client.post("/api/v1/documents/import", json={"token": r.json["token"]}, headers={"X-CSRF-Token": token})
    assert r.status_code == 200 and r.json["version"] == 1
    assert [d["kind"] for d in current_documents(ctx.db)] == ["pos.catalogue"]
    again = client.post("/api/v1/documents/import", json={"token": "gone"}, headers={"X-CSRF-Token": token})
    assert again.status_code == 404
    refused = client.post("/api/v1/documents/preview", headers={"X-CSRF-Token": token},
                          data={"kind": "no.such", "file": (io.BytesIO(b"x"), "x.csv")},
                          content_type="multipart/form-data")
    assert refused.status_code == 400 and "unknown document kind" in refused.json["error"]


def test_the_session_cookie_is_resent_only_when_seen_moves_once_a_minute(client, kit_env, ctx):
    sign_in(client, kit_env["pins"]["lead"])
    first = client.get("/api/v1/status")
    assert first.status_code == 200 and "Set-Cookie" not in first.headers  # nothing changed: no new cookie
    with client.session_transaction() as s:
        seen_before = s["seen"]
        s["seen"] -= 61  # a minute and a second of idling
    moved = client.get("/api/v1/status")
    assert moved.status_code == 200 and "Set-Cookie" in moved.headers
    with client.session_transaction() as s:
        assert s["seen"] >= seen_before  # the activity counts: the idle timeout starts again
    assert "Set-Cookie" not in client.get("/api/v1/status").headers


def test_a_session_idle_just_under_the_timeout_still_works_and_starts_again(client, kit_env, ctx):
    sign_in(client, kit_env["pins"]["door"])
    with client.session_transaction() as s:
        s["seen"] -= ctx.config["web.session_minutes"] * 60 - 5
    assert client.get("/api/v1/checkin/stats").status_code == 200
    with client.session_transaction() as s:
        s["seen"] -= ctx.config["web.session_minutes"] * 60 - 5  # idle again, from the refreshed time
    assert client.get("/api/v1/checkin/stats").status_code == 200


def test_a_forged_or_aged_session_cookie_is_refused_after_the_real_one_was_accepted(client, kit_env, app):
    import time
    from datetime import timedelta

    from kit.web.openapi import SESSION_COOKIE

    sign_in(client, kit_env["pins"]["lead"])
    assert client.get("/api/v1/status").status_code == 200  # the real cookie checked (and kept)
    real = client.get_cookie(SESSION_COOKIE).value
    payload, stamp, signature = real.rsplit(".", 2)
    forged = f"{payload}.{stamp}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    client.set_cookie(SESSION_COOKIE, forged)
    assert client.get("/api/v1/status").status_code == 401
    client.set_cookie(SESSION_COOKIE, real)
    assert client.get("/api/v1/status").status_code == 200
    app.permanent_session_lifetime = timedelta(seconds=1)
    time.sleep(2.1)
    assert client.get("/api/v1/status").status_code == 401  # the cookie's own age still counts


def test_a_lead_who_sets_the_system_clock_days_ahead_and_back_signs_no_screen_out(client, kit_env, ctx, app,
                                                                                   monkeypatch):
    """On the appliance the clock is set through timedated: the system clock itself jumps. Sessions age by
    the kit's steady time (the system time less its own jumps), so neither the lead nor the door is signed
    out, and the lead's CSRF token still holds for setting it back (the image test's clock step)."""
    import time

    from kit import clock as kit_clock

    real_time, moved = time.time, [0.0]
    monkeypatch.setattr(time, "time", lambda: real_time() + moved[0])  # the kernel's clock, as timedated sets it
    monkeypatch.setattr(kit_clock, "_timedated_set_time", lambda true_unix: moved.__setitem__(
        0, moved[0] + true_unix - time.time()))
    monkeypatch.setattr(ctx.clock, "method", "timedated")
    door = app.test_client()
    sign_in(door, kit_env["pins"]["door"])
    signed_in = sign_in(client, kit_env["pins"]["lead"])
    # the cookie's lifetime is relative (Max-Age, counted on the phone's own clock), never a date from
    # the kit's clock: that date reads as long past on a phone whose clock is right, and after the jump
    cookie = next(c for c in signed_in.headers.getlist("Set-Cookie") if c.startswith("fieldkit_session="))
    assert f"Max-Age={ctx.config['web.session_minutes'] * 60}" in cookie and "Expires" not in cookie, cookie
    token = csrf_from(client.get("/").get_data(as_text=True))
    for target in (real_time() + 3 * 86400, real_time()):  # three days ahead, then back
        r = client.post("/api/v1/clock", json={"now_ms": int(target * 1000)}, headers={"X-CSRF-Token": token})
        assert r.status_code == 200 and r.json["method"] == "timedated", r.json
        assert abs(time.time() - target) < 60  # the system clock moved
        assert client.get("/api/v1/status").status_code == 200
        assert door.get("/api/v1/checkin/stats").status_code == 200
    with client.session_transaction() as s:  # the idle timeout still counts, on the steady time
        s["seen"] -= ctx.config["web.session_minutes"] * 60 + 1
    assert client.get("/api/v1/status").status_code == 401
