"""What a mirror and a restore do with bad input: refused or held back with a log line, never stored."""

from __future__ import annotations

import logging

import pytest

from kit.ledger import events_after
from kit.ledger_hold import LedgerHeld, set_hold
from kit.testing import wait_for
from sync.hq import store
from sync.mirror_hub import MirrorHub
from sync.mirror_proto import ack_topic, batch_topic
from sync.restore import RestoreError, check_records, restore
from tests.sync.conftest import append_events


@pytest.fixture
def hub(ctx, tmp_path):
    config = ctx.config.with_values(kit__id="hub1", site__hub=True)
    engine = store.make_engine(f"sqlite:///{tmp_path / 'mirror.db'}")
    h = MirrorHub(config, ctx.bus, engine)
    h.start()
    yield h
    engine.dispose()


def records(ctx, n: int) -> list[dict]:
    """The test kit's own ledger (kit test1, site testsite) as a kit sends it to its mirror."""
    append_events(ctx.db, ctx.ledger, n)
    return [e.as_dict() for e in events_after(ctx.db, 0, 10_000)]


def held(hub, kit="test1") -> list[int]:
    return [r["seq"] for r in hub.events(kit, 0, 10_000)]


def test_a_batch_extends_the_chain_and_is_acknowledged_once_whatever_the_repeats(ctx, hub, listen):
    acks = listen(ack_topic("testsite", "test1", "hub1"))
    recs = records(ctx, 5)
    assert hub.store_batch("test1", recs[:3]) == 3
    assert hub.store_batch("test1", recs) == 2  # a QoS 1 repeat and a resend from the acknowledged seq
    assert held(hub) == [1, 2, 3, 4, 5]
    wait_for(lambda: acks.messages and acks.messages[-1][1]["upto"] == 5, 5, what="the ack")
    assert store.count_events(hub.engine, "test1") == 5


def test_a_wrong_chain_hash_is_refused_with_a_log_line(ctx, hub, caplog):
    recs = records(ctx, 4)
    recs[2] = {**recs[2], "payload": {**recs[2]["payload"], "total_cents": 1}}  # edited after it was hashed
    with caplog.at_level(logging.WARNING, "fieldkit.sync.mirror_hub"):
        hub.store_batch("test1", recs)
    assert held(hub) == [1, 2]  # nothing after a break links either
    assert "reason=chain" in caplog.text


def test_a_seq_from_the_future_waits_and_the_ack_asks_for_the_gap(ctx, hub, listen):
    acks = listen(ack_topic("testsite", "test1", "hub1"))
    recs = records(ctx, 6)
    hub.store_batch("test1", recs[:2])
    hub.store_batch("test1", recs[4:])  # 3 and 4 were lost on the way
    assert held(hub) == [1, 2]
    wait_for(lambda: any(m.get("gap") == 5 and m["upto"] == 2 for _, m in acks.messages), 5, what="a gap ack")
    forged = {**recs[5], "seq": 10**12}
    hub.store_batch("test1", [forged])
    assert held(hub) == [1, 2]


def test_a_second_chain_under_a_mirrored_id_is_refused(ctx, hub, caplog):
    recs = records(ctx, 3)
    hub.store_batch("test1", recs)
    other = {**recs[0], "id": "6f1d2a3e-0000-4000-8000-000000000001"}
    with caplog.at_level(logging.WARNING, "fieldkit.sync.mirror_hub"):
        hub.store_batch("test1", [other])
    assert "reason=second_chain" in caplog.text and store.count_events(hub.engine, "test1") == 3


@pytest.mark.parametrize("topic_kit, msg, reason", [
    ("door2", {"kit": "door9", "site": "testsite", "events": [{}]}, "kit_mismatch"),
    ("door2", {"kit": "door2", "site": "othersite", "events": [{}]}, "other_site"),
    ("door2", {"kit": "door2", "site": "testsite", "events": []}, "bad_events"),
    ("bad kit!", {"kit": "bad kit!", "site": "testsite", "events": [{}]}, "bad_kit"),
    ("door2", {"value": [1, 2]}, "kit_mismatch"),
])
def test_a_batch_of_another_kit_or_site_is_refused_on_arrival(hub, caplog, topic_kit, msg, reason):
    with caplog.at_level(logging.WARNING, "fieldkit.sync.mirror_hub"):
        hub.on_batch(batch_topic("testsite", topic_kit), msg)
    assert f"reason={reason}" in caplog.text and not hub._batches


def test_records_of_another_kit_are_refused_before_anything_is_stored(ctx, hub, caplog):
    recs = records(ctx, 2)
    with caplog.at_level(logging.WARNING, "fieldkit.sync.mirror_hub"):
        hub.store_batch("door2", recs)  # kit door2's topic, kit test1's events
    assert held(hub, "door2") == [] and "bad_record" in caplog.text


def test_restore_refuses_another_kits_events_a_broken_chain_and_a_kit_that_has_a_ledger(ctx):
    recs = records(ctx, 3)
    with pytest.raises(RestoreError, match="of kit 'test1', not of this kit"):
        check_records(recs, "door2")
    broken = [recs[0], {**recs[1], "hash": "0" * 64}, recs[2]]
    checked = check_records(broken, "test1")
    assert [r["seq"] for r in checked.rows] == [1] and "does not link" in checked.problem
    with pytest.raises(RestoreError, match="not empty"):
        restore(ctx.config, ctx.db, [], recs, "test")


def test_a_held_ledger_records_nothing(ctx):
    with ctx.db.transaction() as conn:
        set_hold(conn, "restore this spare first", 0.0)
    with pytest.raises(LedgerHeld, match="restore this spare first"), ctx.db.transaction() as conn:
        ctx.ledger.append(conn, "pos.sale", {"n": 1})
    assert ctx.db.scalar("SELECT COUNT(*) FROM events") == 0
