"""Integrity for a whole fleet at once (sync/hq/integrity_bulk.py) answers exactly as per kit does."""

from __future__ import annotations

import sqlalchemy as sa

from sync.hq import integrity, schema, store
from sync.hq.integrity_bulk import kits_integrity
from tests.sync.test_hq_integrity import chained


def test_holes_refusals_edits_and_seqs_stored_twice_read_the_same_in_bulk_as_per_kit(hq_engine):
    kits = ["clean", "holes", "edited", "twice", "refusedgap", "empty"]
    for kit in kits:
        store.add_kit(hq_engine, kit, "market")
    for kit in kits[:-1]:
        store.ingest(hq_engine, kit, chained(kit, 40))
    e = schema.events
    with hq_engine.begin() as conn:
        conn.execute(e.delete().where(e.c.kit == "holes", e.c.seq.in_([1, 2, 10, 11, 12, 30])))
        conn.execute(
            e.update().where(e.c.kit == "edited", e.c.seq == 7).values(payload='{"total_cents":999}')
        )
        conn.execute(e.update().where(e.c.kit == "edited", e.c.seq == 31).values(hash="f" * 64))
        row = conn.execute(sa.select(e).where(e.c.kit == "twice", e.c.seq == 5)).first()._mapping
        conn.execute(e.insert().values({**row, "id": "twice-5-again"}))
        conn.execute(e.delete().where(e.c.kit == "refusedgap", e.c.seq.in_([20, 21])))
        conn.execute(
            schema.refused.insert(),
            [
                {
                    "kit": "refusedgap",
                    "seq": 20,
                    "hash": chained("refusedgap", 20)[-1]["hash"],
                    "reason": "parked",
                    "refused_at": store.now_utc(),
                },
                {
                    "kit": "refusedgap",
                    "seq": 41,
                    "hash": "",
                    "reason": "parked",
                    "refused_at": store.now_utc(),
                },
            ],
        )
    bulk = kits_integrity(hq_engine, kits)
    for kit in kits:
        one = integrity.kit_integrity(hq_engine, kit)
        got = bulk[kit]
        assert {k: got[k] for k in ("events", "hwm", "missing", "missing_ranges", "refused")} == {
            k: one[k] for k in ("events", "hwm", "missing", "missing_ranges", "refused")
        }, kit
        assert (got["chain"].events, got["chain"].linked, got["chain"].unlinked, got["chain"].breaks) == (
            one["chain"].events,
            one["chain"].linked,
            one["chain"].unlinked,
            one["chain"].breaks,
        ), kit
    assert bulk["clean"]["chain"].ok and bulk["clean"]["chain"].linked == 40
    assert bulk["holes"]["missing_ranges"] == [(1, 2), (10, 12), (30, 30)]
    assert [s for s, _ in bulk["edited"]["chain"].breaks] == [7, 31, 32]
    assert [s for s, _ in bulk["twice"]["chain"].breaks] == [5]
    assert bulk["refusedgap"]["hwm"] == 41 and bulk["refusedgap"]["missing_ranges"] == [(21, 21)]
    assert bulk["empty"]["events"] == 0 and bulk["empty"]["hwm"] == 0
