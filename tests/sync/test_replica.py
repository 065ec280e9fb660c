"""The USB replica (backup.path): follows the ledger, survives a torn write and a drive pulled mid-write,
and a spare restored from it sells on with the next receipt number."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kit.db import Database
from kit.documents import import_document
from kit.features import load_features
from kit.ledger import last_seq, verify
from kit.testing import wait_for
from pos.checkout import make_sale, parse_sale_request
from sync.replica import ReplicaWriter, read_replica, scan
from sync.restore import restore
from tests.checkin.conftest import kit_config
from tests.conftest import ServiceThread

CATALOGUE = (Path(__file__).parents[2] / "pos" / "demo" / "catalogue.csv").read_bytes()


def sell(ctx, config) -> str:
    request = parse_sale_request({"items": [{"sku": "STICKER", "qty": 1}],
                                  "payments": [{"method": "cash", "amount": "5.00"}]})
    return make_sale(ctx.db, ctx.ledger, config, request).receipt


@pytest.fixture
def merch(tmp_path, mosquitto):
    (tmp_path / "stick" / "fieldkit-backup").mkdir(parents=True)
    config = kit_config(tmp_path / "kit", mosquitto.port, "merch1", "fair",
                        backup_path=str(tmp_path / "stick" / "fieldkit-backup"))
    db = Database(config.db_path)
    import_document(config, db, "pos.catalogue", CATALOGUE, "catalogue.csv")
    db.close()
    from sync.service import run

    service = ServiceThread("sync", config, run)
    yield service
    service.stop()


def test_the_replica_follows_the_ledger_and_a_spare_restored_from_it_sells_on(merch, tmp_path, mosquitto):
    ctx, config = merch.ctx, merch.config
    receipts = [sell(ctx, config) for _ in range(5)]
    folder = tmp_path / "stick" / "fieldkit-backup" / "merch1"
    wait_for(lambda: scan(folder / "ledger.jsonl", "merch1")[0] == last_seq(ctx.db), 10, what="the replica")
    # state.json is written (atomically) after the ledger lines it vouches for
    wait_for(lambda: (folder / "state.json").exists()
             and json.loads((folder / "state.json").read_text())["upto"] == last_seq(ctx.db), 10, what="state.json")
    wait_for(lambda: list((folder / "snapshots").glob("kit-*.db")), 10, what="a snapshot")
    status = json.loads(subprocess.run(
        [sys.executable, "-m", "kit", "backup", "status", "--json"], capture_output=True, text=True, check=True,
        env={**os.environ, "FIELDKIT_HOME": str(tmp_path / "kit"), "FIELDKIT_KIT_ID": "merch1",
             "FIELDKIT_BACKUP_PATH": str(tmp_path / "stick" / "fieldkit-backup")}).stdout)
    assert status["state"] == "ok" and status["upto"] == last_seq(ctx.db) and status["behind"] == 0

    spare_config = kit_config(tmp_path / "spare", mosquitto.port, "merch1", "fair")
    spare_db = Database(spare_config.db_path)
    records, documents = read_replica(tmp_path / "stick" / "fieldkit-backup", "merch1")
    done = restore(spare_config, spare_db, load_features(), records, "usb", documents)
    assert done["upto"] == len(records) == last_seq(ctx.db) and done["problems"] == []
    assert any(d.startswith("pos.catalogue") for d in done["documents"])
    spare_db.close()
    spare = ServiceThread("sync", spare_config, lambda c: c.stopping.wait())
    try:
        assert sell(spare.ctx, spare_config) == f"merch1-{int(receipts[-1].rsplit('-', 1)[1]) + 1}"
        assert verify(spare.ctx.db)[1] == []
    finally:
        spare.stop()


def test_a_torn_write_never_reads_as_complete_and_is_written_again(merch, tmp_path, caplog):
    ctx, config = merch.ctx, merch.config
    for _ in range(3):
        sell(ctx, config)
    folder = tmp_path / "stick" / "fieldkit-backup" / "merch1"
    wait_for(lambda: scan(folder / "ledger.jsonl", "merch1")[0] == last_seq(ctx.db), 10, what="the replica")
    merch.stop()
    top = last_seq(Database(config.db_path))
    with open(folder / "ledger.jsonl", "ab") as f:
        f.write(b'{"seq": ' + str(top + 1).encode() + b', "id": "torn')  # the stick pulled mid-line
    with caplog.at_level(logging.WARNING, "fieldkit.sync.replica"):
        records, _ = read_replica(folder, "merch1")
    assert [r["seq"] for r in records] == list(range(1, top + 1)) and "torn write" in caplog.text
    lines = (folder / "ledger.jsonl").read_bytes().splitlines(keepends=True)
    edited = json.loads(lines[1])
    edited["payload"]["total_cents"] = 1  # a line edited on the drive: its hash no longer links
    (folder / "ledger.jsonl").write_bytes(lines[0] + json.dumps(edited).encode() + b"\n" + b"".join(lines[2:]))
    records, _ = read_replica(folder, "merch1")
    assert [r["seq"] for r in records] == [1]

    db = Database(config.db_path)
    writer = ReplicaWriter(config, db)  # the kit back on: it cuts what does not verify and writes it again
    with caplog.at_level(logging.WARNING, "fieldkit.sync.replica"):
        writer.pump()
    assert "event=replica_torn" in caplog.text
    assert scan(folder / "ledger.jsonl", "merch1")[:1] == (top,) and scan(folder / "ledger.jsonl", "merch1")[3] == ""
    db.close()


def test_a_real_drive_unmounted_mid_write_harms_neither_the_kit_nor_the_replica(tmp_path, mosquitto):
    if os.geteuid() != 0:
        pytest.skip("mounting a loop filesystem needs root")
    image, mount = tmp_path / "usb.img", tmp_path / "usb"
    mount.mkdir()
    subprocess.run(["truncate", "-s", "32M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    if subprocess.run(["mount", "-o", "loop", str(image), str(mount)], capture_output=True).returncode:
        pytest.skip("loop mounts are not allowed here")
    try:
        (mount / "fieldkit-backup").mkdir()
        config = kit_config(tmp_path / "kit", mosquitto.port, "merch1", "fair",
                            backup_path=str(mount / "fieldkit-backup"))
        db = Database(config.db_path)
        import_document(config, db, "pos.catalogue", CATALOGUE, "catalogue.csv")
        db.close()
        from sync.service import run

        service = ServiceThread("sync", config, run)
        stop, receipts = threading.Event(), []

        def selling() -> None:
            while not stop.is_set():
                receipts.append(sell(service.ctx, config))

        seller = threading.Thread(target=selling, daemon=True)
        seller.start()
        wait_for(lambda: scan(mount / "fieldkit-backup" / "merch1" / "ledger.jsonl", "merch1")[0] >= 20, 20,
                 what="the replica on the drive")
        subprocess.run(["umount", "-l", str(mount)], check=True)  # pulled while the kit writes
        at_unplug = len(receipts)
        replica = service.ctx.replica
        # selling on, and within a replica tick (0.5 s) saying the drive is gone (20 sales take about as long)
        wait_for(lambda: len(receipts) >= at_unplug + 20 and (replica.state != "ok" or replica.folder is None), 20,
                 what="the kit selling on without its drive, and saying so")
        stop.set()
        seller.join(10)
        subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
        records, _ = read_replica(mount / "fieldkit-backup", "merch1")
        assert records and records[-1]["seq"] <= last_seq(service.ctx.db)
        assert [r["seq"] for r in records] == list(range(1, len(records) + 1))  # what it holds verifies
        wait_for(lambda: scan(mount / "fieldkit-backup" / "merch1" / "ledger.jsonl", "merch1")[0]
                 == last_seq(service.ctx.db), 20, what="the replica caught up once the drive is back")
        service.stop()
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
