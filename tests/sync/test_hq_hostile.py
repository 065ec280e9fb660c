"""Hostile input at HQ: bad characters refused record by record, bad tokens throttled per client address."""

from __future__ import annotations

import gzip
import http.client
import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from sync.hq import store, validate
from sync.hq.testing import HQServer
from sync.hq.throttle import AuthThrottle, client_address, parse_networks
from tests.sync.test_hq_ingest import record


def request(port: int, path: str, token: str, body: bytes | None = None, source: str = "127.0.0.1",
            headers: dict | None = None) -> tuple[int, dict, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    hdrs = {"Authorization": f"Bearer {token}", **(headers or {})}
    if body is not None:
        hdrs |= {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}
    conn.request("POST" if body is not None else "GET", path, body=body, headers=hdrs)
    response = conn.getresponse()
    data = json.loads(response.read() or b"{}")
    conn.close()
    return response.status, data, {k.lower(): v for k, v in response.getheaders()}


def hostile_batch() -> bytes:
    lines = [
        json.dumps(record("door1", 1)),
        json.dumps(record("door1", 2, id="door1-\x00-2")),
        json.dumps(record("door1", 3, type="pos.\x00sale")),
        json.dumps(record("door1", 4, hash="ab" * 31 + "\x00a")),
        json.dumps(record("door1", 5, payload={"note": "a\x00b"})),
        json.dumps(record("door1", 6, payload={"k\x00": 1})),
        json.dumps(record("door1", 7, payload={"note": "\ud800"})),  # a lone surrogate, as a JSON escape
        json.dumps(record("door1", 8)).replace('"total_cents": 508', '"total_cents": NaN'),
        '{"id": "door1-ev-9", "payload": ' + "[" * 50_000 + "]" * 50_000 + "}",
        json.dumps(record("door1", 10, wall_time="2026-11-20T18:00:00\x00")),
        json.dumps(record("door1", 11, id="x" * 65)),
        json.dumps(record("door1", 12)),
    ]
    return gzip.compress("\n".join(lines).encode())


def test_a_nul_or_unstorable_character_refuses_that_record_and_stores_its_neighbours(hq):
    token = store.add_kit(hq.engine, "door1", "market")
    status, answer, _ = request(hq.port, "/api/v1/kits/door1/events", token, hostile_batch())
    assert status == 422, answer
    statuses = [r["status"] for r in answer["results"]]
    assert statuses == ["stored"] + ["refused"] * 10 + ["stored"]
    reasons = [r.get("error", "") for r in answer["results"]]
    assert all("NUL" in reasons[i] for i in (1, 2, 3, 4, 5, 9))
    assert "UTF-8" in reasons[6] and "not a JSON number" in reasons[7] and "nested too deeply" in reasons[8]
    assert "is not an event id" in reasons[10]
    assert answer["results"][1]["id"] is None  # HQ never echoes a NUL back
    assert store.count_events(hq.engine, "door1") == 2
    # A NUL in the kit name of the path is a refusal too, never a 500.
    assert request(hq.port, "/api/v1/kits/door%001/hwm", token)[0] == 401


@pytest.mark.parametrize("hq_url_db", ["postgresql"], indirect=True)
def test_a_record_the_database_itself_refuses_is_refused_alone(hq, monkeypatch):
    token = store.add_kit(hq.engine, "door1", "market")
    # Checks HQ forgot: PostgreSQL has the last word, and it refuses only the record with the NUL.
    monkeypatch.setattr(validate, "bad_text", lambda value: None)
    monkeypatch.setattr(validate, "TYPE_RE", re.compile(r"^.{1,64}$", re.S))
    batch = [record("door1", 1), record("door1", 2, type="pos.\x00sale"), record("door1", 3)]
    status, answer, _ = request(hq.port, "/api/v1/kits/door1/events", token,
                                gzip.compress("\n".join(json.dumps(r) for r in batch).encode()))
    assert status == 422
    assert [r["status"] for r in answer["results"]] == ["stored", "refused", "stored"]
    assert "the database refused this record" in answer["results"][1]["error"]
    assert store.count_events(hq.engine, "door1") == 2


@pytest.mark.parametrize("hq_url_db", ["sqlite"], indirect=True)
def test_a_thousand_bad_tokens_are_throttled_and_another_address_still_gets_in(hq):
    token = store.add_kit(hq.engine, "door1", "market")
    conn = http.client.HTTPConnection("127.0.0.1", hq.port, timeout=10)
    counts: dict[int, int] = {}
    retry_after: list[int] = []
    started = time.monotonic()
    for n in range(1000):
        conn.request("GET", "/api/v1/kits/door1/hwm", headers={"Authorization": f"Bearer fk_door1_guess{n}"})
        response = conn.getresponse()
        response.read()
        counts[response.status] = counts.get(response.status, 0) + 1
        if response.status == 429:
            retry_after.append(int(response.getheader("Retry-After")))
    conn.close()
    elapsed = time.monotonic() - started
    assert set(counts) == {401, 429}
    assert counts[401] <= 5 + 10  # the free ones, then one attempt per (doubling) delay at most
    assert counts[429] >= 985, counts
    assert retry_after[0] >= 1
    if max(retry_after) < 2:  # the burst fitted in the first wait (a fast machine): let it pass, fail once more
        time.sleep(retry_after[-1] + 0.3)
        assert request(hq.port, "/api/v1/kits/door1/hwm", "fk_door1_guess_again")[0] == 401
        status, _, headers = request(hq.port, "/api/v1/kits/door1/hwm", "fk_door1_guess_more")
        retry_after.append(int(headers["retry-after"]) if status == 429 else 0)
    assert max(retry_after) >= 2  # the wait grows with consecutive failures
    # The right token from the throttled address waits too (it is not even looked at) ...
    status, answer, headers = request(hq.port, "/api/v1/kits/door1/hwm", token)
    assert status == 429 and int(headers["retry-after"]) >= 1 and "try again in" in answer["error"]
    # ... while a kit at another address is not held up.
    status, answer, _ = request(hq.port, "/api/v1/kits/door1/hwm", token, source="127.0.0.2")
    assert status == 200 and answer["hwm"] == 0
    print(f"bad tokens: {counts} in {elapsed:.1f} s")


@pytest.mark.parametrize("hq_url_db", ["sqlite"], indirect=True)
def test_wrong_report_passwords_are_throttled_too(hq):
    import base64

    admin = store.add_admin(hq.engine, "alice")

    def get(password: str, source: str = "127.0.0.1") -> int:
        basic = "Basic " + base64.b64encode(f"alice:{password}".encode()).decode()
        conn = http.client.HTTPConnection("127.0.0.1", hq.port, timeout=10, source_address=(source, 0))
        conn.request("GET", "/api/v1/report", headers={"Authorization": basic})
        status = conn.getresponse().status
        conn.close()
        return status

    answers = [get(f"guess{n}") for n in range(8)]
    assert answers[:5] == [401] * 5 and answers[-1] == 429
    assert get(admin) == 429 and get(admin, source="127.0.0.2") == 200


@pytest.mark.parametrize("hq_url_db", ["sqlite"], indirect=True)
def test_x_forwarded_for_counts_only_from_a_trusted_proxy(hq_engine):
    token = store.add_kit(hq_engine, "door1", "market")
    untrusted = HQServer(hq_engine)
    trusted = HQServer(hq_engine, trusted_proxies=["127.0.0.1/32"])
    try:
        # From an untrusted peer the header is ignored: inventing addresses does not escape the throttle.
        answers = [request(untrusted.port, "/api/v1/kits/door1/hwm", "bad", headers={"X-Forwarded-For": f"198.51.100.{n}"})[0]
                   for n in range(8)]
        assert answers[:5] == [401] * 5 and 429 in answers[5:]
        # Behind a trusted proxy, the client it names is throttled, and another client is not.
        answers = [request(trusted.port, "/api/v1/kits/door1/hwm", "bad", source="127.0.0.3",
                           headers={"X-Forwarded-For": "203.0.113.7"})[0] for _ in range(3)]
        assert answers == [401] * 3  # 127.0.0.3 is no proxy of ours: counted as itself, not as 203.0.113.7
        answers = [request(trusted.port, "/api/v1/kits/door1/hwm", "bad", headers={"X-Forwarded-For": "203.0.113.7"})[0]
                   for _ in range(8)]
        assert answers[:5] == [401] * 5 and 429 in answers[5:]
        assert request(trusted.port, "/api/v1/kits/door1/hwm", token, headers={"X-Forwarded-For": "203.0.113.7"})[0] == 429
        assert request(trusted.port, "/api/v1/kits/door1/hwm", token, headers={"X-Forwarded-For": "203.0.113.8"})[0] == 200
    finally:
        untrusted.stop()
        trusted.stop()


def test_client_address_walks_forwarded_for_only_through_trusted_hops():
    proxies = parse_networks(["10.0.0.0/8", "::1"])
    assert client_address("192.0.2.1", "203.0.113.7", proxies) == "192.0.2.1"
    assert client_address("10.1.2.3", "203.0.113.7", proxies) == "203.0.113.7"
    assert client_address("10.1.2.3", "203.0.113.7, 10.9.9.9", proxies) == "203.0.113.7"
    assert client_address("10.1.2.3", "198.51.100.1, 203.0.113.7", proxies) == "203.0.113.7"  # the left is the client's word
    assert client_address("10.1.2.3", "not-an-address", proxies) == "10.1.2.3"
    assert client_address("::1", "2001:db8::5", proxies) == "2001:db8::5"
    with pytest.raises(ValueError, match="hq.trusted_proxies"):
        parse_networks(["10.0.0.0/33"])


def test_the_throttle_resets_after_a_success_and_after_a_quiet_spell(tmp_path):
    engine = store.make_engine(f"sqlite:///{tmp_path / 'hq.db'}")
    store.create_schema(engine)
    clock = {"now": datetime(2026, 11, 21, 19, 0, tzinfo=UTC)}
    throttle = AuthThrottle(engine, now=lambda: clock["now"])
    for _ in range(5):
        throttle.failed("192.0.2.1")
    assert throttle.check("192.0.2.1") == (0, True)  # the first five are free
    throttle.failed("192.0.2.1")
    assert throttle.check("192.0.2.1")[0] == 1
    throttle.failed("192.0.2.1")
    assert throttle.check("192.0.2.1")[0] == 2
    assert [throttle.delay(n) for n in (5, 6, 7, 8, 20)] == [0, 1, 2, 4, 60]  # doubling, capped at a minute
    throttle.succeeded("192.0.2.1")
    assert throttle.check("192.0.2.1") == (0, False)
    for _ in range(9):
        throttle.failed("192.0.2.1")
    assert throttle.check("192.0.2.1")[0] == 8
    clock["now"] += timedelta(minutes=16)
    assert throttle.check("192.0.2.1")[0] == 0
    assert throttle.failed("192.0.2.1") == 1  # counted afresh after a quiet spell
    engine.dispose()


def test_two_hq_processes_on_one_postgresql_share_the_throttle(postgres):
    url = postgres.create_database("fk_hq_throttle")
    engines = [store.make_engine(url) for _ in range(2)]
    store.create_schema(engines[0])
    servers = [HQServer(e) for e in engines]
    try:
        token = store.add_kit(engines[0], "door1", "market")
        assert [request(servers[0].port, "/api/v1/kits/door1/hwm", "bad")[0] for _ in range(6)] == [401] * 6
        status, answer, headers = request(servers[1].port, "/api/v1/kits/door1/hwm", token)
        assert status == 429 and int(headers["retry-after"]) >= 1  # the other process knows
        assert request(servers[1].port, "/api/v1/kits/door1/hwm", token, source="127.0.0.2")[0] == 200
    finally:
        for s in servers:
            s.stop()
        for e in engines:
            e.dispose()
        postgres.drop_database("fk_hq_throttle")
