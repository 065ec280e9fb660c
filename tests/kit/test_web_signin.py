"""Sign-in throttling that keeps staff working, and CSRF on the sign-in form itself (Flask test client,
real kit database): a fumbling address waits at most web.login_max_wait_seconds after its last wrong
PIN, the whole kit accepts at most web.login_failures_per_minute wrong PINs, the page says how long."""

import re

import pytest

from kit.web.app import create_app


class Clock:
    def __init__(self, start: float = 1_900_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def app(ctx, clock):
    application = create_app(ctx)
    application.testing = True
    application.config["FIELDKIT_AUTH_CLOCK"] = clock
    return application


def client_at(app, address: str):
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = address
    return c


def login_token(client) -> str:
    html = client.get("/login").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def try_pin(client, pin: str, *, json: bool = False):
    headers = {"Accept": "application/json"} if json else {}
    return client.post("/login", data={"pin": pin, "csrf_token": login_token(client)}, headers=headers)


def test_fifty_wrong_pins_then_the_right_pin_works_within_thirty_seconds(app, kit_env, clock):
    door = client_at(app, "10.0.0.5")
    wrong = 0
    while wrong < 50:
        r = try_pin(door, "000000")
        if r.status_code == 429:
            retry = int(r.headers["Retry-After"])
            assert 1 <= retry <= 30
            assert f"Wait {retry} s and try again" in r.get_data(as_text=True)
            clock.now += retry  # sit out exactly the wait the page asked for
            continue
        assert r.status_code == 401
        wrong += 1
        clock.now += 1.5  # a person re-typing, which also keeps the kit-wide ceiling out of the way
    r = try_pin(door, kit_env["pins"]["door"])
    assert r.status_code == 429  # straight after a wrong PIN: still wait...
    wait = int(r.headers["Retry-After"])
    assert wait <= 30
    assert re.search(rf"Wait {wait} s and try again", r.get_data(as_text=True))
    clock.now += 30  # ...but never longer than 30 s after the last failure
    r = try_pin(door, kit_env["pins"]["door"])
    assert r.status_code == 302 and r.headers["Location"] == "/door"


def test_wrong_pin_answers_json_with_retry_after(app, clock):
    c = client_at(app, "10.0.0.6")
    for _ in range(3):
        assert try_pin(c, "111111", json=True).status_code == 401
    r = try_pin(c, "111111", json=True)
    assert r.status_code == 429 and r.json["code"] == "throttled"
    assert "Wait" in r.json["error"] and 1 <= int(r.headers["Retry-After"]) <= 30


def test_the_kit_wide_ceiling_holds_across_addresses(app, kit_env, ctx, clock):
    ceiling = ctx.config["web.login_failures_per_minute"]
    refused = 0
    for n in range(ceiling + 10):  # a new address for every guess: the per-address delay never starts
        r = try_pin(client_at(app, f"10.1.{n // 200}.{n % 200}"), "222222")
        refused += r.status_code == 429
        clock.now += 0.5
    assert refused == 10
    # every address, even one never seen and with the right PIN, waits until the minute has passed
    r = try_pin(client_at(app, "10.9.9.9"), kit_env["pins"]["lead"])
    assert r.status_code == 429 and "on this kit" in r.get_data(as_text=True)
    assert int(r.headers["Retry-After"]) <= 60
    clock.now += int(r.headers["Retry-After"])
    r = try_pin(client_at(app, "10.9.9.9"), kit_env["pins"]["lead"])
    assert r.status_code == 302 and r.headers["Location"] == "/"
    rows = ctx.db.query("SELECT COUNT(*) AS n FROM kit_auth_failures")[0]["n"]
    assert rows == ceiling  # a refused attempt is not checked and not stored: state stays in the database


def test_sign_in_without_the_pages_token_is_refused(app, kit_env):
    c = client_at(app, "10.0.0.7")
    r = c.post("/login", data={"pin": kit_env["pins"]["lead"]})  # no cookie, no token: a forged form
    assert r.status_code == 400 and "sign-in form expired" in r.get_data(as_text=True)
    other = client_at(app, "10.0.0.8")
    foreign = login_token(other)  # a token from another browser's pre-session cookie
    c.get("/login")
    r = c.post("/login", data={"pin": kit_env["pins"]["lead"], "csrf_token": foreign})
    assert r.status_code == 400
    assert c.get("/api/v1/status").status_code == 401  # not signed in
    r = try_pin(c, kit_env["pins"]["lead"])
    assert r.status_code == 302 and c.get("/api/v1/status").status_code == 200


def test_signing_in_with_a_known_pin_does_not_reset_the_kits_ceiling(app, kit_env, ctx, clock):
    """A door volunteer guessing the lead PIN cannot sign in as door between guesses to go faster."""
    ceiling = ctx.config["web.login_failures_per_minute"]
    c = client_at(app, "10.2.0.1")
    guesses = 0
    for _ in range(ceiling * 3):
        r = try_pin(c, "333333")
        if r.status_code == 429:
            break
        assert r.status_code == 401
        guesses += 1
        clock.now += 0.5
        signed = try_pin(c, kit_env["pins"]["door"])  # clears this address's own delay...
        if signed.status_code == 429:  # ...until the kit's ceiling is reached
            break
        assert signed.status_code == 302
        c.post("/logout", data={"csrf_token": login_token(c)})
    assert guesses == ceiling
    assert "on this kit" in try_pin(c, "333333").get_data(as_text=True)
