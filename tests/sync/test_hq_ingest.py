"""HQ's event ingest over real HTTP, on SQLite and PostgreSQL: idempotent, per record, strict on bad input."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from sync.hq import schema, store
from sync.hq.testing import HQServer


def record(kit: str, seq: int, **overrides) -> dict:
    r = {"id": f"{kit}-ev-{seq}", "kit": kit, "seq": seq, "type": "pos.sale", "payload": {"total_cents": 500 + seq},
         "hlc": seq << 16, "wall_time": "2026-11-20T18:00:00.000+00:00", "clock_synced": True, "hash": "ab" * 32}
    r.update(overrides)
    return r


def gz_lines(records: list) -> bytes:
    return gzip.compress("\n".join(json.dumps(r) for r in records).encode())


def post(hq: HQServer, kit: str, body: bytes, token: str, gzip_: bool = True, extra: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", hq.port, timeout=10)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson", **(extra or {})}
    if gzip_:
        headers["Content-Encoding"] = "gzip"
    conn.request("POST", f"/api/v1/kits/{kit}/events", body=body, headers=headers)
    response = conn.getresponse()
    data = json.loads(response.read())
    conn.close()
    return response.status, data


def test_batch_is_stored_once_and_answered_record_by_record(hq):
    token = store.add_kit(hq.engine, "door1", "market")
    status, answer = post(hq, "door1", gz_lines([record("door1", s) for s in range(1, 51)]), token)
    assert status == 200
    assert [r["status"] for r in answer["results"]] == ["stored"] * 50
    assert answer["hwm"] == 50
    # The answer was lost and the kit sends the same batch again, plus more: nothing is stored twice.
    status, answer = post(hq, "door1", gz_lines([record("door1", s) for s in range(40, 61)]), token)
    assert status == 200
    assert [r["status"] for r in answer["results"]] == ["duplicate"] * 11 + ["stored"] * 10
    assert store.count_events(hq.engine, "door1") == 60
    assert store.high_water_mark(hq.engine, "door1") == 60


def test_wrong_token_unknown_kit_and_another_kits_token_are_refused(hq):
    token1 = store.add_kit(hq.engine, "door1", "market")
    store.add_kit(hq.engine, "door2", "market")
    body = gz_lines([record("door1", 1)])
    assert post(hq, "door1", body, "fk_door1_guess")[0] == 401
    assert post(hq, "nosuchkit", body, token1)[0] == 401
    status, answer = post(hq, "door2", body, token1)
    assert status == 401 and "wrong token" in answer["error"]
    assert store.count_events(hq.engine) == 0
    store.set_kit_disabled(hq.engine, "door1")  # a stolen kit
    status, answer = post(hq, "door1", body, token1)
    assert (status, answer["code"]) == (403, "disabled")
    store.set_kit_disabled(hq.engine, "door1", False)
    assert post(hq, "door1", body, token1)[0] == 200


def test_events_claiming_another_kit_are_refused_and_the_rest_stored(hq):
    token = store.add_kit(hq.engine, "door1", "market")
    batch = [record("door1", 1), record("door2", 2), record("door1", 3)]
    status, answer = post(hq, "door1", gz_lines(batch), token)
    assert status == 422
    assert [r["status"] for r in answer["results"]] == ["stored", "refused", "stored"]
    assert "belongs to kit 'door2'" in answer["results"][1]["error"]
    with hq.engine.connect() as conn:
        assert conn.execute(sa.select(schema.events.c.kit).distinct()).scalars().all() == ["door1"]


def test_malformed_truncated_and_oversized_bodies_get_a_clear_4xx_and_store_nothing(hq_engine):
    hq = HQServer(hq_engine, max_body_bytes=50_000, max_records=100)
    try:
        token = store.add_kit(hq.engine, "door1", "market")
        good = gz_lines([record("door1", s) for s in range(1, 21)])
        status, answer = post(hq, "door1", good[: len(good) // 2], token)
        assert (status, answer["code"]) == (400, "truncated")
        status, answer = post(hq, "door1", b"this is not gzip at all", token)
        assert (status, answer["code"]) == (400, "bad_gzip")
        status, answer = post(hq, "door1", gzip.compress(b""), token)
        assert (status, answer["code"]) == (400, "empty")
        status, answer = post(hq, "door1", gz_lines([record("door1", s) for s in range(1, 102)]), token)
        assert (status, answer["code"]) == (413, "too_many_records")
        big = gzip.compress(b"".join(json.dumps(record("door1", s, payload={"pad": os.urandom(800).hex()})).encode()
                                     + b"\n" for s in range(1, 90)))
        status, answer = post(hq, "door1", big, token)
        assert status == 413
        bomb = gzip.compress(b" " * 5_000_000)  # 5 MB of nothing, 5 kB on the wire
        status, answer = post(hq, "door1", bomb, token)
        assert (status, answer["code"]) == (413, "too_large")
        assert store.count_events(hq.engine) == 0
        # Lines that are not JSON or not events are refused one by one; good lines beside them are kept.
        mixed = gzip.compress(b'{"id": "x"\n' + json.dumps(record("door1", 2)).encode() + b'\n[1,2]\n{"id": 5}\n')
        status, answer = post(hq, "door1", mixed, token)
        assert status == 422
        assert [r["status"] for r in answer["results"]] == ["refused", "stored", "refused", "refused"]
        assert "not valid JSON" in answer["results"][0]["error"]
        assert store.count_events(hq.engine) == 1
    finally:
        hq.stop()


def test_a_kit_clock_from_the_future_is_not_trusted(hq):
    token = store.add_kit(hq.engine, "door1", "market")
    future = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    past = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    post(hq, "door1", gz_lines([record("door1", 1, wall_time=future), record("door1", 2, wall_time=past),
                                record("door1", 3, wall_time=past, clock_synced=False)]), token)
    with hq.engine.connect() as conn:
        rows = {r.seq: r for r in conn.execute(sa.select(schema.events))}
    received = store._aware(rows[1].received_at)
    assert store._aware(rows[1].event_time) == received  # clamped to when HQ got it, not 30 days ahead
    assert rows[1].time_trusted is False
    assert abs((store._aware(rows[2].event_time) - datetime.fromisoformat(past)).total_seconds()) < 1
    assert rows[2].time_trusted is True
    assert rows[3].time_trusted is False


def test_two_hq_processes_over_one_postgresql_do_not_double_count(postgres):
    url = postgres.create_database("fk_hq_two_processes")
    engines = [store.make_engine(url) for _ in range(2)]
    store.create_schema(engines[0])
    servers = [HQServer(e, threads=4) for e in engines]
    try:
        token = store.add_kit(engines[0], "door1", "market")
        batches = [gz_lines([record("door1", s) for s in range(b * 200 + 1, b * 200 + 201)]) for b in range(10)]
        answers: list[dict] = []
        lock = threading.Lock()

        def send(server: HQServer) -> None:
            for body in batches:  # both HQ processes get every batch, at the same time
                status, answer = post(server, "door1", body, token)
                assert status == 200
                with lock:
                    answers.append(answer)

        threads = [threading.Thread(target=send, args=(s,)) for s in servers for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stored = [r["id"] for a in answers for r in a["results"] if r["status"] == "stored"]
        assert len(stored) == 2000 and len(set(stored)) == 2000  # each event reported stored exactly once
        assert store.count_events(engines[0], "door1") == 2000
        assert store.high_water_mark(engines[1], "door1") == 2000
    finally:
        for s in servers:
            s.stop()
        for e in engines:
            e.dispose()
        postgres.drop_database("fk_hq_two_processes")


@pytest.mark.parametrize("hq_url_db", ["sqlite"], indirect=True)
def test_hq_serves_an_openapi_document_matching_its_routes(hq):
    conn = http.client.HTTPConnection("127.0.0.1", hq.port, timeout=10)
    conn.request("GET", "/api/v1/openapi.json")
    spec = json.loads(conn.getresponse().read())
    rules = {r.rule.replace("<kit>", "{kit}").replace("<int:doc_id>", "{id}").replace("<version>", "{version}")
             .replace("<arch>", "{arch}")
             for r in hq.app.url_map.iter_rules() if r.rule.startswith("/api/v1/")}
    assert rules - {"/api/v1/openapi.json"} == set(spec["paths"])


def test_any_json_a_kit_might_send_is_stored_or_refused_never_a_crash(tmp_path):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    engine = store.make_engine(f"sqlite:///{tmp_path / 'fuzz.db'}")
    store.create_schema(engine)
    scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.text(max_size=80) | st.floats(allow_nan=False)
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                                max_size=3), max_leaves=6)
    fields = {"id": st.text(max_size=70) | values, "kit": st.sampled_from(["door1", "door2"]) | values,
              "seq": st.integers(-3, 2**64) | values, "type": st.text(max_size=70) | values,
              "payload": st.dictionaries(st.text(max_size=8), values, max_size=4) | values,
              "hlc": st.integers(-1, 2**64) | values, "wall_time": st.sampled_from(["2026-11-20T10:00:00Z", "nonsense"]) | values,
              "clock_synced": st.booleans() | values, "hash": st.text(max_size=70) | values}
    record = st.fixed_dictionaries({}, optional=fields) | values

    @settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(record, min_size=1, max_size=5))
    def check(batch):
        before = store.count_events(engine)
        results = store.ingest(engine, "door1", batch)
        assert len(results) == len(batch)
        stored = [r for r in results if r.status == "stored"]
        assert store.count_events(engine) == before + len(stored)
        for r, rec in zip(results, batch, strict=True):
            if r.status == "refused":
                assert r.error
            else:
                assert rec["kit"] == "door1" and isinstance(rec["payload"], dict)

    check()
    engine.dispose()
