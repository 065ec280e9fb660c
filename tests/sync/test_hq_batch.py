"""HQ stores a batch in one round (executemany on SQLite, COPY on PostgreSQL) and still answers per record.

Real databases (SQLite and PostgreSQL), real HTTP; the fault tests with a connection-cutting proxy are
in test_agent.py and run over the same batch path.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from kit.ledger import GENESIS, _chain_hash
from sync.client import event_line
from sync.hq import integrity, schema, store, validate
from tests.sync.test_hq_ingest import gz_lines, post

AWKWARD = {"note": 'tab\there, line\nbreak, back\\slash, "quoted", \\u0000 as text', "name": "Zoë 🎪",
           "lines": [{"sku": "TS-M", "qty": 1}], "cents": -250, "ratio": 0.5, "none": None, "ok": True}


def chained(kit: str, count: int, payload=lambda seq: {"total_cents": seq}) -> list[dict]:
    """Records that link as a kit's ledger does (each hash covers the event before)."""
    records, prev = [], GENESIS
    for seq in range(1, count + 1):
        text = json.dumps(payload(seq), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        r = {"id": f"{kit}-{seq}", "kit": kit, "seq": seq, "type": "pos.sale", "payload": payload(seq),
             "hlc": seq << 16, "wall_time": "2026-11-20T18:00:00.000+00:00", "clock_synced": True}
        r["hash"] = prev = _chain_hash(prev, seq, r["id"], kit, r["type"], text, r["hlc"], r["wall_time"], 1)
        records.append(r)
    return records


def stored_rows(engine, kit: str) -> dict[int, dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(schema.events).where(schema.events.c.kit == kit)).all()
    return {r.seq: dict(r._mapping) for r in rows}


def test_a_batch_reads_back_exactly_like_a_row_stored_by_sqlalchemy(hq_engine):
    """The batch path writes the driver's own values; they must read back as SQLAlchemy's own insert does."""
    store.add_kit(hq_engine, "door1", "market")
    at = datetime(2026, 11, 20, 18, 0, 0, 123456, tzinfo=UTC)
    first, second = (dict(r, payload=AWKWARD) for r in chained("door1", 2))
    results = store.ingest(hq_engine, "door1", [first], received_at=at)
    assert [r.status for r in results] == ["stored"]
    row = validate.validate_record(second, "door1", at)
    with hq_engine.begin() as conn:  # the row-by-row fallback's statement
        conn.execute(store._insert_ignoring_duplicates(hq_engine), [row])
    held = stored_rows(hq_engine, "door1")
    ignore = {"id", "seq", "hash", "hlc"}
    assert {k: v for k, v in held[1].items() if k not in ignore} == {k: v for k, v in held[2].items() if k not in ignore}
    assert json.loads(held[1]["payload"]) == AWKWARD
    assert held[1]["clock_synced"] is True and store._aware(held[1]["received_at"]) == at


def test_a_large_batch_answers_every_record_and_stores_each_once(hq):
    token = store.add_kit(hq.engine, "door1", "market")
    records = chained("door1", 3000)
    status, answer = post(hq, "door1", gz_lines(records[:1000]), token)
    assert status == 200 and answer["stored"] == 1000
    batch = records[900:3000]  # 100 already held, then new ones
    batch[500] = dict(batch[500], id="bad\u0000id")  # refused in Python before the batch reaches the database
    batch[700] = dict(batch[700], hash="not-a-hash")
    batch.insert(1200, dict(batch[1199]))  # the same record twice in one batch
    status, answer = post(hq, "door1", gz_lines(batch), token)
    statuses = [r["status"] for r in answer["results"]]
    assert status == 422 and len(statuses) == len(batch)
    assert statuses[:100] == ["duplicate"] * 100
    assert statuses[500] == statuses[700] == "refused" and "NUL" in answer["results"][500]["error"]
    assert statuses[1200] == "duplicate" and statuses[1199] == "stored"
    assert answer["stored"] == 2000 - 2 and answer["refused"] == 2 and answer["duplicate"] == 101
    assert [r["seq"] for r in answer["results"]][1000:1003] == [s["seq"] for s in batch[1000:1003]]
    assert store.count_events(hq.engine, "door1") == 3000 - 2
    chain = integrity.verify_chain(hq.engine, "door1")
    # The refused seqs are parked, not holes; the event after one with an unusable hash waits to be linked.
    assert chain.ok and chain.linked + chain.unlinked == 3000 - 2 and chain.unlinked == 1
    status, answer = post(hq, "door1", gz_lines(records[1400:1401] + records[1600:1601]), token)  # fixed, re-sent
    assert status == 200 and answer["stored"] == 2 and store.count_events(hq.engine, "door1") == 3000
    assert integrity.verify_chain(hq.engine, "door1").linked == 3000


def test_an_edited_record_in_a_batch_is_flagged_as_it_arrives(hq, caplog):
    import logging

    token = store.add_kit(hq.engine, "door1", "market")
    records = chained("door1", 600)
    records[299]["payload"] = {"total_cents": 1}  # changed after the kit hashed it
    with caplog.at_level(logging.WARNING, logger="fieldkit.hq.integrity"):
        status, answer = post(hq, "door1", gz_lines(records[:450]), token)
        post(hq, "door1", gz_lines(records[450:]), token)
    assert status == 200 and answer["stored"] == 450
    assert "event=chain_break kit=door1 seq=300" in caplog.text and caplog.text.count("event=chain_break") == 1


@pytest.mark.parametrize("payload", [
    {"a": "x\x00"}, {"a\x00": 1}, {"deep": [[[[{"a": "\x00"}]]]]}, {"a": "\ud800"}, {"a": float("nan")},
    {"a": float("-inf")}, {"a": "\\u0000"}, AWKWARD, {"n": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
    {"n": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
])
def test_the_quick_payload_check_decides_as_the_full_walk_does(payload):
    try:
        validate.check_payload(payload)
        expected = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except ValueError as e:
        expected = f"refused: {e}"
    try:
        got = validate.payload_text(payload)
    except ValueError as e:
        got = f"refused: {e}"
    assert got == expected


def test_the_agents_line_is_the_event_as_hq_reads_it():
    from kit.ledger import Event

    event = Event(7, "id-7", "door1", "pos.sale", AWKWARD, 123, "2026-11-20T18:00:00.000+00:00", True, "ab" * 32)
    text = json.dumps(AWKWARD, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    line = event_line(event.seq, event.id, event.kit, event.type, text, event.hlc, event.wall_time, 1, event.hash)
    assert json.loads(line) == event.as_dict()


BASE = {"id": "k-1", "kit": "k", "seq": 1, "type": "pos.sale", "payload": {"a": 1}, "hlc": 5,
        "wall_time": "2026-11-20T18:00:00.000+00:00", "clock_synced": True, "hash": "ab" * 32}


@pytest.mark.parametrize("change", [
    {}, {"id": "x\x00"}, {"id": 7}, {"kit": "other"}, {"seq": 0}, {"seq": True}, {"seq": 2**63}, {"hlc": -1},
    {"type": ""}, {"type": "a\x00"}, {"payload": []}, {"payload": {"a": "\x00"}}, {"payload": {"a": float("inf")}},
    {"wall_time": "1969-01-01T00:00:00"}, {"wall_time": "2026-13-01T00:00:00"}, {"wall_time": "2099-01-01T00:00:00Z"},
    {"clock_synced": 1}, {"clock_synced": False}, {"hash": "AB" * 32}, {"hash": None},
])
def test_the_quick_record_check_decides_as_the_checks_in_order_do(change):
    record, now = dict(BASE, **change), datetime.now(UTC)

    def outcome(check):
        try:
            return check(record, "k", now)
        except ValueError as e:
            return f"refused: {e}"

    assert outcome(validate.validate_record) == outcome(validate._validate_in_order)
