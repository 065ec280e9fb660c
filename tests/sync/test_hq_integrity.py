"""HQ notices holes and a broken hash chain, and refuses seqs far beyond what a kit has sent (SQLite + PostgreSQL)."""

from __future__ import annotations

import http.client
import json
import logging

import sqlalchemy as sa
from click.testing import CliRunner

from kit.cli import cli
from kit.ledger import GENESIS, _chain_hash, canonical_json
from sync.agent import SyncAgent
from sync.hq import integrity, schema, store
from sync.hq.reconcile import build_report
from tests.sync.conftest import append_events
from tests.sync.test_hq_ingest import gz_lines, post


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def hq_seqs(engine, kit: str) -> list[int]:
    with engine.connect() as conn:
        return sorted(conn.execute(sa.select(schema.events.c.seq).where(schema.events.c.kit == kit)).scalars())


def get_mark(hq, kit: str, token: str) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", hq.port, timeout=10)
    conn.request("GET", f"/api/v1/kits/{kit}/hwm", headers={"Authorization": f"Bearer {token}"})
    answer = json.loads(conn.getresponse().read())
    conn.close()
    return answer


def chained(kit: str, count: int, start_prev: str = GENESIS) -> list[dict]:
    """Records as a kit's ledger makes them: each hash covers the record before."""
    prev, out = start_prev, []
    for seq in range(1, count + 1):
        rec = {"id": f"{kit}-{seq}", "kit": kit, "seq": seq, "type": "pos.sale", "payload": {"total_cents": seq},
               "hlc": seq << 16, "wall_time": "2026-11-20T18:00:00.000+00:00", "clock_synced": True}
        rec["hash"] = prev = _chain_hash(prev, seq, rec["id"], kit, rec["type"], canonical_json(rec["payload"]),
                                         rec["hlc"], rec["wall_time"], 1)
        out.append(rec)
    return out


def test_a_range_deleted_at_hq_is_flagged_and_the_next_sync_restores_exactly_it(ctx, joined, hq, hq_url_db):
    append_events(ctx.db, ctx.ledger, 10_000)
    agent = SyncAgent(joined.with_values(sync__batch_size=500), ctx.db)
    assert agent.run_session().stored == 10_000
    with hq.engine.begin() as conn:
        conn.execute(schema.events.delete().where(schema.events.c.kit == "test1", schema.events.c.seq.between(5001, 5100)))
    listed = invoke("hq", "kits", "list", "--db", hq_url_db).output
    assert "events     9900" in listed and "hwm    10000" in listed
    assert "MISSING 100 (seq 5001-5100)" in listed and "chain ok" in listed
    section = build_report(hq.engine).section("integrity")
    assert section.flagged == 1 and "100 EVENTS MISSING" in section.rows[0][-1]

    result = invoke("sync", "now")
    assert result.exit_code == 0, result.output
    assert "HQ was missing seq 5001–5100: sent again, 100 restored at HQ." in result.output
    assert "Uploaded 100 events (100 new at HQ, 0 HQ already had" in result.output  # only the hole went up
    assert "HQ has everything this kit recorded." in result.output
    assert hq_seqs(hq.engine, "test1") == list(range(1, 10_001))
    listed = invoke("hq", "kits", "list", "--db", hq_url_db).output
    assert "events    10000" in listed and "missing none" in listed and "chain ok" in listed
    assert agent.run_session().uploaded == 0  # nothing left to restore: the next session sends nothing


def test_refused_seqs_are_not_holes_and_a_far_future_seq_is_refused_without_raising_the_mark(hq):
    token = store.add_kit(hq.engine, "door1", "market")
    records = chained("door1", 13)
    records[11]["kit"] = "oldname"  # seq 12 was written before the kit was renamed: refused, parked by the kit
    del records[10]  # seq 11 never arrived
    status, answer = post(hq, "door1", gz_lines(records), token)
    assert status == 422 and answer["refused"] == 1 and answer["hwm"] == 13
    mark = get_mark(hq, "door1", token)
    assert (mark["hwm"], mark["missing"], mark["missing_count"]) == (13, [[11, 11]], 1)  # 12 is not a hole

    far = dict(chained("door1", 1)[0], id="door1-far", seq=1_000_006)
    status, answer = post(hq, "door1", gz_lines([far]), token)
    assert status == 422 and answer["results"][0]["status"] == "refused"
    assert "too far ahead of what HQ holds" in answer["results"][0]["error"]
    mark = get_mark(hq, "door1", token)
    assert (mark["hwm"], mark["missing"]) == (13, [[11, 11]])  # the mark did not move, no new hole appeared
    assert store.count_events(hq.engine, "door1") == 11
    # The kit sends contiguously: a whole batch just past the mark is taken.
    status, answer = post(hq, "door1", gz_lines(chained("door1", 40)[13:]), token)
    assert status == 200 and answer["stored"] == 27 and answer["hwm"] == 40


def test_an_edited_payload_breaks_the_chain_in_kits_list_and_the_report(ctx, joined, hq, hq_url_db):
    append_events(ctx.db, ctx.ledger, 300)
    SyncAgent(joined, ctx.db).run_session()
    assert integrity.verify_chain(hq.engine, "test1").summary() == "ok (300 linked)"
    with hq.engine.begin() as conn:  # someone at HQ lowers a sale
        conn.execute(schema.events.update().where(schema.events.c.kit == "test1", schema.events.c.seq == 150)
                     .values(payload='{"n":149,"total_cents":1}'))
    chain = integrity.verify_chain(hq.engine, "test1")
    assert [seq for seq, _ in chain.breaks] == [150] and "edited" in chain.breaks[0][1]
    listed = invoke("hq", "kits", "list", "--db", hq_url_db).output
    assert "chain BROKEN" in listed and "chain broken at seq 150" in listed
    report = build_report(hq.engine)
    section = report.section("integrity")
    assert section.rows[0][-1] == "CHAIN BROKEN AT SEQ 150" and section.flagged == 1
    assert "CHAIN BROKEN AT SEQ 150" in invoke("hq", "report", "--db", hq_url_db).output


def test_an_event_arriving_with_a_hash_that_does_not_fit_is_logged_and_flagged(hq, caplog):
    token = store.add_kit(hq.engine, "door1", "market")
    records = chained("door1", 6)
    records[3]["payload"] = {"total_cents": 999}  # changed after the kit hashed it (or a lost event)
    with caplog.at_level(logging.WARNING, logger="fieldkit.hq.integrity"):
        status, answer = post(hq, "door1", gz_lines(records), token)
    assert status == 200 and answer["stored"] == 6  # stored as received: HQ keeps the evidence
    assert "event=chain_break kit=door1 seq=4" in caplog.text
    assert [seq for seq, _ in integrity.verify_chain(hq.engine, "door1").breaks] == [4]
