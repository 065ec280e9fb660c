"""Attendee privacy reaches the hub's mirror: when a kit's erasure and its truncation reach the hub's
HQ-shaped store (mirror.db), the hub deletes its copy of that kit's events up to the checkpoint and the
kit's mirrored documents, and its file holds none of the imported names or e-mails any more (searched
byte by byte); a restore from it refuses plainly (the chain starts at the checkpoint). A truncation by
age alone leaves the mirror whole. One real hub store, the kit's real ledger, no broker round trip."""

from __future__ import annotations

import pytest

from kit.config import load_config
from kit.db import Database
from kit.features import load_features
from kit.ledger import checkpoint, events_after, last_seq
from kit.service import open_database
from sync import mirror_docs, mirror_docs_store
from sync.mirror_hub import MirrorHub
from sync.restore import RestoreError, restore
from tests.checkin.conftest import kit_config
from tests.kit.test_privacy_erase import PEOPLE, attendee_csv, fieldkit, files_holding
from tests.sync.test_privacy_relayed import NAMES, hub_acknowledges


def mirror_everything(hub: MirrorHub, db, kit: str, site: str, after: int) -> int:
    """What the kit's mirror sender would publish and the hub store: its new events and documents."""
    hub.store_batch(kit, [e.as_dict() for e in events_after(db, after, 5000)], ack=False)
    for doc in mirror_docs.current(db):
        msg = mirror_docs.message(kit, site, doc)
        if msg is not None:
            mirror_docs_store.keep(hub.engine, kit, mirror_docs.check(msg, kit, site))
    return last_seq(db)


def test_the_hub_erases_its_mirror_of_a_kit_that_erased_and_a_restore_from_it_refuses(
    kit_env, tmp_path, mosquitto
):
    env = kit_env["env"]
    (tmp_path / "guests.csv").write_bytes(attendee_csv(PEOPLE))
    fieldkit(env, "documents", "import", "checkin.attendees", str(tmp_path / "guests.csv"))
    for person in PEOPLE:
        fieldkit(env, "checkin", "scan", person[0])
    config = load_config()
    hub_config = kit_config(tmp_path / "hub", mosquitto.port, "hub1", config.site, site_hub=1)
    hub = MirrorHub(hub_config, bus=None)
    db = open_database(config)
    try:
        sent = mirror_everything(hub, db, config.kit_id, config.site, 0)
        assert hub.upto(config.kit_id)[0] == sent
        assert files_holding(hub_config.data_dir, NAMES)  # the mirrored attendee list is in mirror.db

        hub_acknowledges(config, upto=sent, hq_upto=sent)  # HQ holds it all, through the hub's relay
        fieldkit(env, "privacy", "erase")
        cp = checkpoint(db.conn)
        assert cp is not None and cp.seq > 1
        mirror_everything(hub, db, config.kit_id, config.site, sent)  # the erasure and the truncation arrive

        records = hub.events(config.kit_id, 0)
        assert records[0]["seq"] == cp.seq + 1 and records[-1]["seq"] == last_seq(db)
        with hub.engine.connect() as conn:  # the report's facts of the truncated events went with them
            held = conn.exec_driver_sql("SELECT MIN(seq) FROM hq_scan_facts WHERE kit = ?", (config.kit_id,)).scalar()
        assert held is None or held > cp.seq
        assert mirror_docs_store.latest(hub.engine, config.kit_id) == []
        assert files_holding(hub_config.data_dir, NAMES) == {}
    finally:
        db.close()
        hub.engine.dispose()

    spare_config = kit_config(tmp_path / "spare", mosquitto.port, config.kit_id, config.site)
    spare_db = Database(spare_config.db_path)
    try:
        with pytest.raises(RestoreError, match=f"only from seq {cp.seq + 1}"):
            restore(spare_config, spare_db, load_features(), records, "the hub's mirror")
        assert last_seq(spare_db) == 0  # nothing was taken
    finally:
        spare_db.close()


def test_a_truncation_by_age_alone_leaves_the_mirror_whole(kit_env, tmp_path, mosquitto):
    from kit import privacy
    from kit.service import make_context

    env = kit_env["env"]
    (tmp_path / "guests.csv").write_bytes(attendee_csv(PEOPLE))
    fieldkit(env, "documents", "import", "checkin.attendees", str(tmp_path / "guests.csv"))
    for person in PEOPLE:
        fieldkit(env, "checkin", "scan", person[0])
    config = load_config()
    hub = MirrorHub(kit_config(tmp_path / "hub", mosquitto.port, "hub1", config.site, site_hub=1), bus=None)
    ctx = make_context("test", config)
    try:
        sent = mirror_everything(hub, ctx.db, config.kit_id, config.site, 0)
        from kit.ledger import truncate

        truncate(ctx.db, ctx.ledger, sent - 1, "older than ledger.keep_days and held by HQ")
        assert privacy.last_erasure(ctx.db) is None
        mirror_everything(hub, ctx.db, config.kit_id, config.site, sent)
        assert hub.events(config.kit_id, 0)[0]["seq"] == 1  # a restore from the hub can still take it all
    finally:
        ctx.db.close()
        hub.engine.dispose()


def test_a_truncation_whose_checkpoint_is_not_in_the_held_chain_deletes_nothing(kit_env, tmp_path, mosquitto):
    from kit.ledger import TRUNCATED_EVENT
    from kit.privacy import ERASED_EVENT
    from kit.service import make_context

    config = load_config()
    hub = MirrorHub(kit_config(tmp_path / "hub", mosquitto.port, "hub1", config.site, site_hub=1), bus=None)
    ctx = make_context("test", config)
    try:
        with ctx.db.transaction() as conn:
            for i in range(5):
                ctx.ledger.append(conn, "kit.note", {"i": i})
            ctx.ledger.append(conn, ERASED_EVENT, {"erased": {}})
            ctx.ledger.append(conn, TRUNCATED_EVENT, {"through_seq": 3, "checkpoint_hash": "0" * 64})
        mirror_everything(hub, ctx.db, config.kit_id, config.site, 0)
        assert hub.events(config.kit_id, 0)[0]["seq"] == 1  # a forged checkpoint: the mirror keeps its chain
    finally:
        ctx.db.close()
        hub.engine.dispose()
