"""Attendee privacy reaches the USB replica: after the erasure the replica folder holds no imported name
or e-mail (searched byte by byte: its ledger copy, snapshots and documents), the sync service's replica
writer writes it again from the truncated ledger with a fresh snapshot, that replica verifies from its
checkpoint, and `fieldkit restore --from-usb` onto a spare refuses it plainly (its tables cannot be
rebuilt from a ledger that starts after a checkpoint)."""

from __future__ import annotations

import json

from kit.config import load_config
from kit.ledger import checkpoint, last_seq
from kit.service import open_database
from sync.replica import ReplicaWriter, latest_snapshot, read_replica
from tests.kit.test_privacy_erase import PEOPLE, attendee_csv, fieldkit, files_holding
from tests.sync.test_privacy_relayed import NAMES, hub_acknowledges


def test_the_erasure_empties_the_replica_and_it_is_written_again_from_the_checkpoint(
    kit_env, tmp_path, monkeypatch
):
    stick = tmp_path / "stick" / "fieldkit-backup"
    stick.mkdir(parents=True)
    monkeypatch.setenv("FIELDKIT_BACKUP_PATH", str(stick))
    env = {**kit_env["env"], "FIELDKIT_BACKUP_PATH": str(stick)}
    (tmp_path / "guests.csv").write_bytes(attendee_csv(PEOPLE))
    fieldkit(env, "documents", "import", "checkin.attendees", str(tmp_path / "guests.csv"))
    for person in PEOPLE:
        fieldkit(env, "checkin", "scan", person[0])
    config = load_config()
    db = open_database(config)
    try:
        writer = ReplicaWriter(config, db)  # the sync service's writer, running before and after the erasure
        writer.pump()
        before = files_holding(stick, NAMES)
        assert any("snapshots" in f for f in before) and any("documents" in f for f in before), before

        hub_acknowledges(config, upto=last_seq(db), hq_upto=last_seq(db))  # HQ holds it all (via the hub)
        done = fieldkit(env, "privacy", "erase")
        assert "the USB replica" in done.stdout
        assert files_holding(stick, NAMES) == {}

        writer.pump()  # the writer notices the truncation and the removed files, and writes it all again
        assert writer.status()["state"] == "ok"
        cp = checkpoint(db.conn)
        assert cp is not None and cp.seq > 1
        folder = stick / config.kit_id
        first = json.loads((folder / "ledger.jsonl").read_text().splitlines()[0])
        assert first["seq"] == cp.seq + 1
        assert latest_snapshot(folder) is not None  # a fresh snapshot, of the erased database
        assert files_holding(stick, NAMES) == {}
        records, _docs = read_replica(stick, config.kit_id)  # verifies from its checkpoint
        assert [r["seq"] for r in records] == list(range(cp.seq + 1, last_seq(db) + 1))

        # The writer restarted (a reboot) takes the rewritten replica as it is: nothing is written twice.
        again = ReplicaWriter(config, db)
        assert again.pump() == 0 and again.upto == last_seq(db)
    finally:
        db.close()

    spare = {**env, "FIELDKIT_HOME": str(tmp_path / "spare")}
    fieldkit(spare, "init", "--kit-id", config.kit_id, "--site", config.site)
    refused = fieldkit(spare, "restore", "--from-usb", str(stick), check_rc=1)
    assert f"only from seq {cp.seq + 1}" in refused.stderr + refused.stdout
    assert "Traceback" not in refused.stderr


def test_a_snapshot_an_erasure_overtook_never_reaches_the_drive(kit_env, tmp_path, monkeypatch):
    """The writer copies the database while the erasure commits (here: the erasure's record is written
    while the online backup runs): that copy holds the names, so it is shredded, not kept."""
    stick = tmp_path / "stick" / "fieldkit-backup"
    stick.mkdir(parents=True)
    monkeypatch.setenv("FIELDKIT_BACKUP_PATH", str(stick))
    env = {**kit_env["env"], "FIELDKIT_BACKUP_PATH": str(stick)}
    (tmp_path / "guests.csv").write_bytes(attendee_csv(PEOPLE))
    fieldkit(env, "documents", "import", "checkin.attendees", str(tmp_path / "guests.csv"))
    config = load_config()
    db = open_database(config)
    try:
        writer = ReplicaWriter(config, db)
        writer.pump()  # the replica as it was before the erasure
        snaps = stick / config.kit_id / "snapshots"
        kept = sorted(snaps.iterdir())

        class ErasedMidway:  # the kit's connection, with an erasure committing from another one mid-backup
            def __init__(self, conn):
                self._conn = conn

            def backup(self, dest):
                self._conn.backup(dest)
                other = open_database(config)
                with other.transaction() as conn:
                    conn.execute("INSERT INTO kit_privacy_erasures (at, event_ends, forced, event_seq, summary)"
                                 " VALUES (0, '', 1, 0, '{}')")
                other.close()

            def __getattr__(self, name):
                return getattr(self._conn, name)

        real = db.conn
        monkeypatch.setattr(type(db), "conn", property(lambda self: ErasedMidway(real)), raising=True)
        assert writer.snapshot() is None
        monkeypatch.undo()
        assert sorted(snaps.iterdir()) == kept  # no new copy, and no .tmp left behind
    finally:
        db.close()
