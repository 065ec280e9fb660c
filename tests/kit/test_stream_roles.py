"""The live stream respects roles: each role, subscribed to '#', receives only topics the REST API would
show it (a real waitress server, a real Mosquitto, real sessions); the stream's table cannot drift from
the API's route roles; the hub's latest-state table keeps only known topics."""

from __future__ import annotations

import json
import re
import threading

import pytest
import requests
from waitress.server import create_server

from kit import topics
from kit.features import load_features
from kit.testing import free_port, wait_for
from kit.web import sse
from kit.web.service import stop_server
from kit.web.stream_roles import ANY_SIGNED_IN, KIT_RULES, SITE_RULES, StreamRoles, route_roles

FEATURES = [f.name for f in load_features()] + ["appliance"]

# Every kind of topic the kit publishes under fieldkit/<kit>/ (a new one belongs here and in the table).
PUBLISHED = (
    [f"{s}/health" for s in topics.SERVICES] + ["status"] + [f"{f}/state" for f in FEATURES] + [
        "checkin/event/scanned", "checkin/event/double", "checkin/event/peer", "checkin/event/simulated",
        "checkin/event/undone", "checkin/event/mode", "checkin/cmd/simulate",
        "pos/event/sale", "pos/event/print", "pos/cmd/print", "pos/cmd/reprint", "pos/event/pickup_window", "pos/event/drop",
        "power/event/low", "power/cmd/sim",
        "cues/event/fired", "cues/event/done", "cues/cmd/fire", "cues/cmd/stop_all",
        "sync/event/now", "sync/event/document", "sync/cmd/now",
        "kit/event/document", "lead/event/slot",
    ])
# What the issue says each role may read (the REST API's answer), written out independently of the table.
# Every screen shows the run-sheet's current slot, so lead/ (state and slot moments) is for every role.
MAY_READ = {
    "door": lambda t: t == "status" or t.endswith("/health") or t.startswith("lead/")
    or (t.startswith("checkin/") and "/cmd/" not in t),
    "merch": lambda t: t == "status" or t.endswith("/health") or t.startswith("lead/")
    or (t.startswith("pos/") and "/cmd/" not in t),
    "lead": lambda t: True,
}
SUMMARY_KEYS = {"state", "services"}


@pytest.fixture
def server(app):
    port = free_port()
    srv = create_server(app, host="127.0.0.1", port=port, threads=8, ident="fieldkit-test")
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    stop_server(srv, thread, app.extensions["fieldkit"].bus.hub)  # as the service stops: streams end at once


def signed_in(base: str, pin: str) -> requests.Session:
    s = requests.Session()
    html = s.get(base + "/login", timeout=5).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    r = s.post(base + "/login", data={"pin": pin, "csrf_token": token}, allow_redirects=False, timeout=5)
    assert r.status_code == 302, r.text
    return s


class StreamReader(threading.Thread):
    def __init__(self, session: requests.Session, url: str):
        super().__init__(daemon=True)
        self.response = session.get(url, stream=True, timeout=10)
        self.messages: list[dict] = []
        self.connected = threading.Event()

    def run(self) -> None:
        try:
            for line in self.response.iter_lines(decode_unicode=True):
                if line.startswith(": connected"):
                    self.connected.set()
                elif line.startswith("data: "):
                    self.messages.append(json.loads(line[6:]))
        except (requests.RequestException, OSError):
            pass

    def topics(self) -> set[str]:
        return {m["topic"] for m in list(self.messages)}


def test_every_rule_resolves_to_the_route_it_names(app):
    roles = route_roles(app)
    for rule in KIT_RULES + SITE_RULES:
        if rule.route:
            assert rule.route in roles, f"stream rule {rule.pattern} names {rule.route}, which the app lacks"
        else:
            assert rule.role == "lead", f"{rule.pattern}: a rule without a route is for leads only"


def test_the_stream_table_agrees_with_each_features_api(app):
    """Independent of the table's chosen routes: a feature's topics go to the least role of its GET API."""
    stream = StreamRoles.for_app(app)
    by_route = route_roles(app)
    for feature in FEATURES:
        api_prefix = {"appliance": "GET /api/v1/network"}.get(feature, f"GET /api/v1/{feature}/")
        api = {k: v for k, v in by_route.items() if k.startswith(api_prefix)}
        assert api, f"no GET API for {feature}"
        least = {"door", "merch", ANY_SIGNED_IN} & set(api.values()) or {"lead"}
        for topic in (f"{feature}/state", f"{feature}/event/x"):
            _rule, full, _summary = stream.rule_for(topic)
            assert {full} <= least, f"{topic}: stream role {full}, API's least role {least}"
    assert stream.rule_for("status")[1] == by_route["GET /api/v1/status"]


def test_every_published_topic_has_a_rule_and_unknown_ones_go_to_nobody(app):
    stream = StreamRoles.for_app(app)
    for topic in PUBLISHED:
        assert stream.rule_for(topic) is not None, f"{topic} has no stream rule"
    assert stream.view("lead", "invented/topic", {"x": 1}) is None
    site = StreamRoles(route_roles(app), SITE_RULES)
    for topic in ("site/s1/checkin/k2", "site/s1/catchup/checkin/k2", "site/s1/mirror/k2"):
        assert site.rule_for(topic) is not None
        assert site.view("door", topic, {}) is None or topic.startswith("site/s1/checkin/")
        assert site.view("merch", topic, {}) is None


def test_each_role_on_hash_gets_only_what_it_may_read(server, kit_env, ctx):
    anonymous = requests.get(server + "/events?topics=%23", timeout=5)
    assert anonymous.status_code == 401
    readers = {role: StreamReader(signed_in(server, kit_env["pins"][role]), server + "/events?topics=%23")
               for role in ("door", "merch", "lead")}
    for r in readers.values():
        r.start()
        assert r.connected.wait(5)
    kit_id = ctx.config.kit_id
    secret = {"state": "ok", "detail": "lead-only detail", "services": {"web": "ok"}, "pid": 1}
    for topic in PUBLISHED + ["invented/thing", "invented/state"]:
        ctx.bus.publish(f"fieldkit/{kit_id}/{topic}", secret, qos=1)
    ctx.bus.publish(topics.health(kit_id, "web"), {"state": "final"}, qos=1)
    for role, reader in readers.items():
        wait_for(lambda r=reader: any(m["payload"].get("state") == "final" for m in list(r.messages)), 10,
                 what=f"{role} stream to see the last message")
    for role, reader in readers.items():
        got = reader.topics()
        leaked = {t for t in got if not MAY_READ[role](t)}
        assert not leaked, f"{role} received {leaked}"
        expected = {t for t in PUBLISHED if MAY_READ[role](t)}
        assert expected <= got, f"{role} missed {expected - got}"
        assert "invented/thing" not in got and "invented/state" not in got
        if role != "lead":
            for m in reader.messages:
                if m["topic"] == "status" or m["topic"].endswith("/health"):
                    assert set(m["payload"]) <= SUMMARY_KEYS, m
    assert "pos/state" in readers["merch"].topics() and "checkin/event/scanned" in readers["door"].topics()
    lead_status = [m for m in readers["lead"].messages if m["topic"] == "sync/health"]
    assert lead_status and lead_status[-1]["payload"]["detail"] == "lead-only detail"
    door_health = [m for m in readers["door"].messages if m["topic"] == "sync/health"]
    assert door_health and door_health[-1]["payload"] == {"state": "ok"}


def test_a_reconnecting_door_gets_no_lead_state_from_the_latest_table(server, kit_env, ctx):
    kit_id = ctx.config.kit_id
    ctx.bus.publish(topics.state(kit_id, "power"), {"soc_percent": 50}, qos=1)
    ctx.bus.publish(topics.health(kit_id, "power"), {"state": "ok", "detail": "x"}, qos=1)
    hub = ctx.bus.hub
    wait_for(lambda: "power/state" in hub.latest() and "power/health" in hub.latest(), 5, what="hub has state")
    door = StreamReader(signed_in(server, kit_env["pins"]["door"]), server + "/events?topics=%23")
    door.start()
    wait_for(lambda: "power/health" in door.topics(), 5, what="the snapshot")
    assert "power/state" not in door.topics()


def test_the_latest_state_table_keeps_only_known_topics(ctx, caplog):
    hub = sse.EventHub(ctx.bus, ctx.config.kit_id, sse.known_stateful_topics(FEATURES))
    before = len(hub.latest())
    for n in range(300):
        hub._on_message(f"fieldkit/{ctx.config.kit_id}/invented{n}/state", {"n": n})
        hub._on_message(f"fieldkit/{ctx.config.kit_id}/invented{n}/health", {"n": n})
    hub._on_message(f"fieldkit/{ctx.config.kit_id}/pos/state", {"printer": "ok"})
    latest = hub.latest()
    assert not any(k.startswith("invented") for k in latest)
    assert latest["pos/state"] == {"printer": "ok"} and len(latest) <= max(before, 1) + 1
    refusals = [r for r in caplog.records if "event=stream_state_refused" in r.getMessage()]
    assert len(refusals) == 2  # the first refusal of each kind (state, health), not 600 lines


def test_a_stream_cannot_ask_for_too_many_or_too_long_patterns(server, kit_env):
    s = signed_in(server, kit_env["pins"]["lead"])
    many = ",".join(f"t{n}/#" for n in range(sse.MAX_PATTERNS + 1))
    assert s.get(server + "/events", params={"topics": many}, timeout=5).status_code == 400
    assert s.get(server + "/events", params={"topics": "a" * 200}, timeout=5).status_code == 400
    assert s.get(server + "/events", params={"topics": "a/#/b"}, timeout=5).status_code == 400


def test_live_streams_leave_threads_for_every_other_request(server, kit_env, ctx):
    s = signed_in(server, kit_env["pins"]["door"])
    limit = max(1, ctx.config["web.threads"] - sse.SPARE_THREADS)
    hub = ctx.bus.hub
    fillers = [sse.ClientQueue() for _ in range(limit - hub.open_streams())]  # as many queues as open streams
    hub._clients.update(fillers)
    try:
        r = s.get(server + "/events?topics=%23", timeout=5)
        assert r.status_code == 503 and r.headers["Retry-After"]
        assert s.get(server + "/api/v1/checkin/stats", timeout=5).status_code == 200
    finally:
        hub._clients.difference_update(fillers)
    assert s.get(server + "/events?topics=%23", stream=True, timeout=5).status_code == 200


def test_each_screen_reads_the_reason_of_its_own_device_and_no_other(app):
    """The header's role-safe status: the door sees why its scanner is degraded, the merch screen why its
    printer is; neither sees the other's reason, nor any other service's."""
    stream = StreamRoles.for_app(app)
    sick = {"state": "degraded", "reason": "Camera not found", "pid": 7, "detail": "lead-only"}
    assert stream.view("door", "checkin/health", sick) == {"state": "degraded", "reason": "Camera not found"}
    assert stream.view("merch", "checkin/health", sick) == {"state": "degraded"}
    assert stream.view("merch", "pos/health", sick) == {"state": "degraded", "reason": "Camera not found"}
    assert stream.view("door", "pos/health", sick) == {"state": "degraded"}
    assert stream.view("door", "power/health", sick) == {"state": "degraded"}
    assert stream.view("lead", "checkin/health", sick) == sick
