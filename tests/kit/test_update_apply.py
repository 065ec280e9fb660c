"""The parts of an update around the processes: the hold, "is the kit busy", recovery after a power cut, the
dashboard's upload page and personalise.sh --release-key. (Real updates of a running kit:
tests/system/test_update_apply.py.)"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kit.clock import KitClock
from kit.event_codec import unpack
from kit.ledger import Ledger
from kit.update import hold, slots
from kit.update.apply import finish_rollback, journal_path, recover, take_snapshot
from kit.update.busy import busy_reason
from kit.update.keys import new_key_pair, parse_public

ROOT = Path(__file__).resolve().parents[2]


def ledger_for(config) -> Ledger:
    return Ledger(config.kit_id, KitClock(config.data_dir, True, "offset"))


def append(db, config, type_: str, payload: dict) -> None:
    with db.transaction() as conn:
        ledger_for(config).append(conn, type_, payload)


def test_while_a_release_is_on_trial_no_event_enters_the_ledger(db, config):
    append(db, config, "pos.sale", {"receipt": "r1"})
    hold.set_hold(config.data_dir, config.db_path, "0.9.0")
    with pytest.raises(hold.UpdateInProgress, match="Updating — back in a minute") as caught:
        append(db, config, "pos.sale", {"receipt": "r2"})
    assert isinstance(
        caught.value, sqlite3.OperationalError
    )  # every writer's "database would not take it" path
    assert db.scalar("SELECT COUNT(*) FROM events") == 1
    hold.clear_hold(config.data_dir)
    append(db, config, "pos.sale", {"receipt": "r3"})
    assert db.scalar("SELECT COUNT(*) FROM events") == 2


def test_the_kit_is_busy_while_doors_are_open_or_the_merch_table_sells(db, config):
    now = time.time()
    assert busy_reason(db.conn, config, now) is None
    append(db, config, "checkin.scanned", {"admitted": True, "rehearsal": True, "at": now - 60})
    assert busy_reason(db.conn, config, now) is None  # a rehearsal is not the doors
    append(db, config, "checkin.scanned", {"admitted": True, "rehearsal": False, "at": now - 600})
    assert busy_reason(db.conn, config, now) == "the doors are open (last admission 10 min ago)"
    assert busy_reason(db.conn, config, now + 31 * 60) is None
    later = now + 31 * 60
    append(db, config, "pos.shift_opened", {"at": later - 120})
    append(db, config, "pos.sale", {"at": later - 60})
    assert busy_reason(db.conn, config, later).startswith("the merch table is selling")
    append(db, config, "pos.shift_closed", {"at": later - 30})
    assert busy_reason(db.conn, config, later) is None


def fake_slot(config, version: str) -> Path:
    slot = slots.releases_dir(config) / version
    (slot / "bin").mkdir(parents=True)
    (slot / slots.RELEASE_FILE).write_text(json.dumps({"version": version}))
    return slot


def test_a_power_cut_during_the_trial_goes_back_to_the_old_release_and_its_data(db, config):
    old, new = fake_slot(config, "0.1.0"), fake_slot(config, "0.2.0")
    slots.switch_current(config, old)
    append(db, config, "pos.sale", {"receipt": "before"})
    hold.set_hold(config.data_dir, config.db_path, "0.2.0")
    take_snapshot(config)
    slots.switch_current(config, new)
    with db.transaction() as conn:  # what the new release's migrations did
        conn.execute("CREATE TABLE pos_new_thing (x)")
    journal = {
        "id": "cut1",
        "updater": "gone:999999:1",
        "step": "trial",
        "mode": "up",
        "from_version": "0.1.0",
        "to_version": "0.2.0",
        "from_slot": str(old),
        "to_slot": str(new),
    }
    journal_path(config).write_text(json.dumps(journal))
    db.close()

    assert recover(config) is True  # `current` changed: the kit restarts from it
    assert os.readlink(slots.current_link(config)) == "0.1.0" and not new.exists()
    assert not journal_path(config).exists() and hold.read_hold(config.data_dir) is None
    conn = sqlite3.connect(config.db_path)
    assert not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'pos_new_thing'").fetchone()
    rows = [
        (t, json.loads(unpack(p))) for t, p in conn.execute("SELECT type, payload FROM events ORDER BY seq")
    ]
    assert [t for t, _ in rows] == ["pos.sale", "update.rolled_back"]
    assert rows[1][1]["reason"] == "the update was interrupted (trial); the kit went back to 0.1.0"
    assert recover(config) is False  # nothing left to do
    finish_rollback(config, journal)  # finishing it twice (a second power cut) records it once
    assert conn.execute("SELECT COUNT(*) FROM events WHERE type = 'update.rolled_back'").fetchone()[0] == 1


def cut_while_installing(config, update_id: str, old: Path, half: Path) -> None:
    """The journal a power cut leaves while the new slot is being built (the updater gone)."""
    journal_path(config).parent.mkdir(parents=True, exist_ok=True)
    journal_path(config).write_text(json.dumps({
        "id": update_id, "updater": None, "step": "installing", "from_slot": str(old), "to_slot": str(half),
        "from_version": "0.1.0", "to_version": "0.2.0",
    }))

def test_a_power_cut_while_installing_leaves_the_running_release_alone(db, config):
    old = fake_slot(config, "0.1.0")
    slots.switch_current(config, old)
    half = fake_slot(config, "0.2.0")
    cut_while_installing(config, "cut2", old, half)
    assert recover(config) is False
    assert os.readlink(slots.current_link(config)) == "0.1.0" and not half.exists()
    assert "interrupted while installing" in unpack(db.query("SELECT payload FROM events")[-1][0])


def test_recovery_stops_an_install_that_outlived_its_updater(db, config):
    """``pip --python`` installs from a grandchild of the updater, which a killed updater leaves running:
    recovery must stop it, or it writes the half-built slot back after recovery removed it."""
    old = fake_slot(config, "0.1.0")
    slots.switch_current(config, old)
    half = fake_slot(config, "0.2.0")
    (half / "bin" / "python").symlink_to(Path(os.path.realpath(sys.executable)))
    writer = subprocess.Popen(  # started from the slot's python, as pip's re-exec is, orphaned by the kill
        [
            str(half / "bin" / "python"),
            "-c",
            "import os, sys, time\n"
            "while True:\n"
            "    os.makedirs(sys.argv[1], exist_ok=True)\n"
            "    time.sleep(0.01)\n",
            str(half / "lib" / "site-packages" / "kit"),
        ],
    )
    made = half / "lib" / "site-packages" / "kit"
    try:
        # Until the writer has run a line of Python its exec may not have set /proc/PID/cmdline (the
        # kernel fills it after the exec's point of no return): wait for its first directory, as a real
        # pip has long been running when a power cut's recovery looks for it.
        deadline = time.monotonic() + 30
        while not made.exists() and writer.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert made.exists(), "the writer never started"
        cut_while_installing(config, "cut3", old, half)
        assert recover(config) is False
        assert writer.wait(timeout=10) == -9  # killed, not left writing
        time.sleep(0.3)
        assert not half.exists()
        assert os.readlink(slots.current_link(config)) == "0.1.0"
    finally:
        writer.kill()
        writer.wait()


@pytest.fixture
def trusted(kit_env, monkeypatch, tmp_path):
    key, pub = new_key_pair(tmp_path / "keys")
    monkeypatch.setenv("FIELDKIT_UPDATE_TRUSTED_KEYS", pub.read_text().strip())
    return key


@pytest.fixture
def lead(trusted, ctx, kit_env):
    from kit.web.app import create_app

    app = create_app(ctx)
    app.testing = True
    client = app.test_client()
    token = re.search(
        r'name="csrf-token" content="([^"]+)"', client.get("/login").get_data(as_text=True)
    ).group(1)
    client.post("/login", data={"pin": kit_env["pins"]["lead"], "csrf_token": token})
    client.csrf = re.search(
        r'name="csrf-token" content="([^"]+)"', client.get("/update").get_data(as_text=True)
    ).group(1)
    return client


def test_the_lead_uploads_a_bundle_and_chooses_tonight_after_close(lead, trusted, ctx, tmp_path):
    from tests.kit.test_update_bundle import flip_byte, make_bundle

    bundle = make_bundle(tmp_path, trusted)
    tampered = make_bundle(tmp_path / "t", trusted)
    flip_byte(tampered, "wheels/fieldkit-0.9.0-py3-none-any.whl")

    def upload(path: Path):
        with path.open("rb") as f:
            return lead.post(
                "/api/v1/update/upload",
                data={"file": (f, path.name)},
                headers={"X-CSRF-Token": lead.csrf},
                content_type="multipart/form-data",
            )

    refused = upload(tampered)
    assert refused.status_code == 400 and "changed or damaged" in refused.get_json()["error"]
    ok = upload(bundle)
    assert ok.status_code == 200 and ok.get_json()["version"] == "0.9.0"
    page = lead.get("/update").get_data(as_text=True)
    assert "Update to 0.9.0 now" in page and "Update to 0.9.0 tonight after close" in page
    chosen = lead.post(
        "/api/v1/update/choose",
        json={"path": ok.get_json()["path"], "when": "after_close"},
        headers={"X-CSRF-Token": lead.csrf},
    )
    assert chosen.status_code == 200 and chosen.get_json()["when"] == "after_close"
    assert "Chosen: 0.9.0 tonight after close" in lead.get("/update").get_data(as_text=True)
    bad = lead.post(
        "/api/v1/update/choose",
        json={"path": "/etc/passwd", "when": "now"},
        headers={"X-CSRF-Token": lead.csrf},
    )
    assert bad.status_code == 400 and "no longer there" in bad.get_json()["error"]


def test_screens_say_updating_during_the_trial(lead, ctx):
    hold.set_hold(ctx.config.data_dir, ctx.config.db_path, "0.9.0")
    try:
        assert "Updating — back in a minute" in lead.get("/update").get_data(as_text=True)
    finally:
        hold.clear_hold(ctx.config.data_dir)
    assert "Updating — back in a minute" not in lead.get("/update").get_data(as_text=True)


def test_personalise_writes_the_release_key_the_kit_then_trusts(tmp_path):
    image = tmp_path / "fieldkit.img"
    with open(image, "wb") as f:
        f.truncate(24 * 1024 * 1024)
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    subprocess.run(
        ["sfdisk", "-q", str(image)],
        input="label: dos\nstart=2048, size=16384, type=c\n",
        text=True,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["mformat", "-i", f"{image}@@{2048 * 512}", "-T", "16384", "-h", "64", "-s", "32", "::"],
        check=True,
        env=env,
        capture_output=True,
    )
    _key, pub = new_key_pair(tmp_path / "keys")
    base = [
        "bash",
        str(ROOT / "image-build/personalise.sh"),
        str(image),
        "--kit-id",
        "door1",
        "--site",
        "m",
        "--hotspot-ssid",
        "door1-kit",
        "--hotspot-password",
        "long enough 1",
    ]
    not_a_key = tmp_path / "nope.pub"
    not_a_key.write_text("ssh-ed25519 AAAA me@laptop\n")
    refused = subprocess.run(
        [*base, "--release-key", str(not_a_key)], capture_output=True, text=True, env=env
    )
    assert refused.returncode == 2 and "is not a release public key" in refused.stderr
    done = subprocess.run([*base, "--release-key", str(pub)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    toml = subprocess.run(
        ["mtype", "-i", f"{image}@@{2048 * 512}", "::fieldkit.toml"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    (tmp_path / "fieldkit.toml").write_text(toml)
    from kit.config import load_config
    from kit.update.keys import trusted_keys

    config = load_config({"FIELDKIT_HOME": str(tmp_path)})
    assert trusted_keys(config) == [parse_public(pub.read_text())]


def test_a_bundle_on_the_usb_stick_waits_while_the_doors_are_open(db, config, tmp_path):
    from kit.update.status import pickup, update_status
    from tests.kit.test_update_bundle import flip_byte, make_bundle

    key, pub = new_key_pair(tmp_path / "keys")
    usb = tmp_path / "usb" / "fieldkit-update"
    usb.mkdir(parents=True)
    config = config.with_values(update__path=str(usb), update__trusted_keys=[pub.read_text()])
    assert pickup(config) == "no new release found"
    make_bundle(tmp_path / "a", key).rename(usb / "fieldkit-0.9.0.fkb")
    bad = make_bundle(tmp_path / "b", key, version="0.9.1")
    flip_byte(bad, "manifest.json")
    bad.rename(usb / "fieldkit-0.9.1.fkb")
    append(db, config, "checkin.scanned", {"admitted": True, "rehearsal": False, "at": time.time() - 90})
    said = pickup(config)
    assert said.startswith("Field Kit 0.9.0") and said.endswith(
        "waits: the doors are open (last admission 1 min ago)"
    )
    found = {Path(b["path"]).name: b for b in update_status(config)["available"]}
    assert found["fieldkit-0.9.0.fkb"]["refused"] == ""
    assert "manifest was changed after signing" in found["fieldkit-0.9.1.fkb"]["refused"]
    assert not slots.releases_dir(config).exists()  # nothing was installed


def test_the_trial_sees_a_unit_systemd_keeps_restarting_or_skips(monkeypatch):
    """Under systemd the trial stops early, instead of waiting out update.trial_seconds, when a unit of the
    new release crash-loops (NRestarts) or when one that ran before no longer runs: a release whose
    `fieldkit` cannot even answer `run --check` has every unit skipped by its ExecCondition=."""
    from kit.update import trial

    monkeypatch.setattr(trial, "_last_journal_line", lambda unit: "this release is broken on purpose")
    shown = (
        "Type=notify\nId=fieldkit-pos.service\nActiveState=active\nNRestarts=0\n\n"
        "Type=notify\nId=fieldkit-web.service\nActiveState=activating\nNRestarts=1\n\n"
        "Type=oneshot\nId=fieldkit-slip.service\nActiveState=inactive\nNRestarts=0\n\n"
        "Type=notify\nId=fieldkit-status.service\nActiveState=inactive\nNRestarts=0\n"
    )
    baseline = trial.parse_unit_states(shown)
    assert baseline["fieldkit-web.service"] == trial.UnitState("activating", 1, "notify")
    before = ["fieldkit-pos.service", "fieldkit-web.service"]
    restarted = {**baseline, "fieldkit-web.service": trial.UnitState("activating", 3, "notify")}
    assert trial.units_verdict(before, baseline, restarted, settled=True) is None  # two restarts: not yet
    restarted["fieldkit-web.service"] = trial.UnitState("activating", 4, "notify")
    assert trial.units_verdict(before, baseline, restarted, settled=False) == (
        "fieldkit-web.service failed 3 times in a row (this release is broken on purpose)")
    skipped = {**baseline, "fieldkit-pos.service": trial.UnitState("inactive", 0, "notify")}
    assert trial.units_verdict(before, baseline, skipped, settled=False) is None  # still within the grace
    assert trial.units_verdict(before, baseline, skipped, settled=True) == (
        "fieldkit-pos.service ran before the update and does not run now (inactive): "
        "this release is broken on purpose")
    # the member units a service group steps aside from were never running: not held against it
    assert trial.units_verdict(before, baseline, baseline, settled=True) is None
