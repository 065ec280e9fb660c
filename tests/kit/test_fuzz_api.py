"""Schemathesis over the kit's own OpenAPI document, against a running simulated kit (`fieldkit up
--simulate`, every service, real broker), as a lead and as nobody: no request gets a 500, and no 5xx the
operation does not document. Bounded: a few examples per operation, a hard time budget, 127.0.0.1 only."""

from __future__ import annotations

import os
import re
import time

import hypothesis
import paho.mqtt.client as mqtt
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from paho.mqtt.enums import CallbackAPIVersion
from schemathesis import GenerationMode

from kit.bus import topic_matches
from kit.web.stream_roles import KIT_RULES, SITE_RULES

pytestmark = [pytest.mark.slow, pytest.mark.system]

EXAMPLES_PER_OPERATION = 20
BUDGET_SECONDS = {"lead": 55.0, "anonymous": 25.0}
# Operations that act on the host beyond the kit's own files: never fuzzed here.
SKIP = {("POST", "/api/v1/network/online")}  # moves the machine's Wi-Fi (NetworkManager)
SAFE_ENV = {
    "FIELDKIT_KIT_CLOCK_METHOD": "offset",  # never timedatectl set-time on the machine running the tests
    "FIELDKIT_POWER_SHUTDOWN_COMMAND": "true",  # never power the machine off, whatever the battery does
}


def lead_session(base: str, pin: str) -> tuple[requests.Session, str]:
    s = requests.Session()
    html = s.get(base + "login", timeout=5).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    assert s.post(base + "login", data={"pin": pin, "csrf_token": token}, allow_redirects=False,
                  timeout=5).status_code == 302
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', s.get(base, timeout=5).text).group(1)
    return s, csrf


def fuzz_operation(op, base: str, session: requests.Session, headers: dict, deadline: float, stats: dict) -> None:
    documented = {int(c) for c in op.definition.raw.get("responses", {}) if str(c).isdigit()}
    strategy = op.as_strategy(GenerationMode.POSITIVE) | op.as_strategy(GenerationMode.NEGATIVE)

    @hypothesis.settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                         phases=[Phase.explicit, Phase.generate], derandomize=True,
                         suppress_health_check=list(HealthCheck))
    @hypothesis.given(case=strategy)
    def one(case):
        if time.monotonic() > deadline:
            return
        response = case.call(base_url=base.rstrip("/"), session=session, headers=headers, timeout=15)
        stats["cases"] += 1
        stats["by_status"][response.status_code] = stats["by_status"].get(response.status_code, 0) + 1
        if response.status_code == 500 or (response.status_code >= 500 and response.status_code not in documented):
            stats["server_errors"].append((op.method.upper(), op.path, response.status_code,
                                           response.text[:200], case.as_curl_command()[:400]))

    one()


HOSTILE_BODIES = ["[]", "[1, 2]", '"token"', "7", "null", "true", '{"token": ["x"]}', '{"a": {"b": [{}]}}',
                  "{not json", "[" * 5000 + "]" * 5000]


def hostile_bodies(base: str, session: requests.Session, headers: dict) -> dict:
    """Every POST operation, every body shape that is not the object it wants: none may give a 5xx."""
    spec = session.get(base + "api/v1/openapi.json", timeout=5).json()
    stats = {"cases": 0, "server_errors": []}
    for path, ops in spec["paths"].items():
        if "post" not in ops or ("POST", path) in SKIP:
            continue
        documented = {int(c) for c in ops["post"]["responses"] if c.isdigit()}
        url = base.rstrip("/") + re.sub(r"{[^}]+}", "x1", path)
        for body in HOSTILE_BODIES:
            r = session.post(url, data=body, headers={**headers, "Content-Type": "application/json"}, timeout=15)
            stats["cases"] += 1
            if r.status_code == 500 or (r.status_code >= 500 and r.status_code not in documented):
                stats["server_errors"].append(("POST", path, r.status_code, body[:20], r.text[:120]))
    return stats


def fuzz(base: str, session: requests.Session, headers: dict, budget: float) -> dict:
    schema = schemathesis.openapi.from_url(base + "api/v1/openapi.json")
    stats = {"cases": 0, "operations": 0, "server_errors": [], "by_status": {}}
    deadline = time.monotonic() + budget
    for result in schema.get_all_operations():
        op = result.ok()
        if (op.method.upper(), op.path) in SKIP or time.monotonic() > deadline:
            continue
        stats["operations"] += 1
        fuzz_operation(op, base, session, headers, deadline, stats)
    return stats


def topics_seen(port: int) -> tuple[mqtt.Client, set[str]]:
    seen: set[str] = set()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fuzz-topic-watch-{os.getpid()}")
    client.on_message = lambda _c, _u, msg: seen.add(msg.topic)
    client.on_connect = lambda c, *_a: c.subscribe("fieldkit/#")
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client, seen


def test_schemathesis_as_lead_and_as_nobody_finds_no_server_error(kit_factory, mosquitto):
    watch, seen = topics_seen(mosquitto.port)
    kit = kit_factory(None, extra_env=SAFE_ENV)  # every service: the cue, sync and printer routes answer
    lead, csrf = lead_session(kit.url, kit.pins["lead"])
    for who, session, headers in (("lead", lead, {"X-CSRF-Token": csrf}), ("anonymous", requests.Session(), {})):
        hostile = hostile_bodies(kit.url, session, headers)
        print(f"\nhostile bodies as {who}: {hostile['cases']} cases, {len(hostile['server_errors'])} server errors")
        assert not hostile["server_errors"], "\n".join(map(str, hostile["server_errors"][:10]))
        stats = fuzz(kit.url, session, headers, BUDGET_SECONDS[who])
        print(f"\nschemathesis as {who}: {stats['cases']} cases over {stats['operations']} operations, "
              f"{len(stats['server_errors'])} server errors; statuses {dict(sorted(stats['by_status'].items()))}")
        assert stats["cases"] >= stats["operations"] > 20
        assert not stats["server_errors"], "\n".join(map(str, stats["server_errors"][:10]))
        if who == "lead":
            assert stats["by_status"].get(200, 0) > 0  # the session really was a lead's
        else:
            assert set(stats["by_status"]) - {200, 400, 401, 404, 405} == set()  # nobody gets in
    # every service is still running and reporting (degraded is fair: the fuzz took the simulated printer's
    # paper away and asked sync for an HQ this kit has not got)
    states = kit.health()["services"]
    assert all(states[s] in ("ok", "degraded") for s in kit.services if s != "status"), states
    # every topic the running kit published on the way has a rule in the live stream's role table
    watch.loop_stop()
    prefix = f"fieldkit/{kit.health()['kit']}/"
    mine = {t[len(prefix):] for t in seen if t.startswith(prefix)}
    print(f"topics the kit published: {sorted(mine)}")
    assert len(mine) > 10
    unruled = {t for t in mine if not any(topic_matches(r.pattern, t) for r in KIT_RULES)}
    unruled |= {t for t in seen if t.startswith("fieldkit/site/")
                and not any(topic_matches(r.pattern, t[len("fieldkit/"):]) for r in SITE_RULES)}
    assert not unruled, f"topics without a stream rule: {sorted(unruled)}"
