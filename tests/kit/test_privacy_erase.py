"""Attendee privacy: after `fieldkit privacy erase` the kit's files hold none of the imported names or
e-mails (searched byte by byte), the door still refuses a used ticket, and the ledger still verifies;
erasing before HQ holds everything is refused without --now; the sync service erases by itself when due."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from sync.hq import store
from sync.hq.documents import put_document
from sync.hq.testing import HQServer

PEOPLE = [  # (secret, order, first, surname, e-mail): surnames nobody else uses, so a hit is ours
    ("PRIVSECRETA0001", "ORDA1", "Ana", "Quxwellborn", "ana.quxwellborn@privacy-test.example"),
    ("PRIVSECRETB0002", "ORDB2", "Bo", "Zymarcton", "bo.zymarcton@privacy-test.example"),
    ("PRIVSECRETC0003", "ORDC3", "Cyd", "Frobishmoor", "cyd.frobishmoor@privacy-test.example"),
]
HQ_PERSON = ("PRIVSECRETD0004", "ORDD4", "Dee", "Vexhallington", "dee.vexhallington@privacy-test.example")
PICKUP_NAME = "Ezra Plumtravisk"
SIGNUP_EMAIL = "fan.ollivendrake@privacy-test.example"
PEER_NAME = "Gil Marrowquisten"
INCIDENT_NAME, RESOLVED_NAME = "Hal Brindlewoke", "Ida Tamsquorrel"  # in an incident's notes
NEEDLES = (
    [p[3] for p in PEOPLE + [HQ_PERSON]]
    + [p[4] for p in PEOPLE + [HQ_PERSON]]
    + ["Plumtravisk", "ollivendrake", "Marrowquisten", "Quxwellborn", "Ana Quxwellborn"]
    + ["Brindlewoke", "Tamsquorrel"]
)


def attendee_csv(people) -> bytes:
    rows = ["Order code,Attendee name,E-mail,Secret,Product,Comment"]
    rows += [f"{o},{f} {s},{e},{sec},Day pass,allergic to nuts ({s})" for sec, o, f, s, e in people]
    return ("\n".join(rows) + "\n").encode()


def fieldkit(env, *args, check_rc: int | None = 0):
    done = subprocess.run(
        [sys.executable, "-m", "kit", *args], env=env, capture_output=True, text=True, timeout=180
    )
    if check_rc is not None:
        assert done.returncode == check_rc, f"{args}: rc {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def files_holding(root: Path, needles: list[str]) -> dict[str, list[str]]:
    """Every file under root whose raw bytes contain a needle (case-insensitive: the search index lowercases)."""
    found: dict[str, list[str]] = {}
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes().lower()
            hits = [n for n in needles if n.lower().encode() in data]
            if hits:
                found[str(path.relative_to(root))] = hits
    return found


@pytest.fixture
def hq(tmp_path):
    engine = store.make_engine(f"sqlite:///{tmp_path / 'hq.db'}")
    store.create_schema(engine)
    server = HQServer(engine)
    yield server
    server.stop()
    engine.dispose()


def populate(kit_env, config, hq, tmp_path) -> dict:
    """A kit after an evening: an attendee list (one from HQ), scans, a pickup, a signup, a peer's scan."""
    env = kit_env["env"]
    (tmp_path / "guests.csv").write_bytes(attendee_csv(PEOPLE))
    fieldkit(env, "documents", "import", "checkin.attendees", str(tmp_path / "guests.csv"))
    (tmp_path / "pickups.csv").write_text(f"code,name,sku,qty\nPU-100,{PICKUP_NAME},TS-L,1\n")
    fieldkit(env, "documents", "import", "pos.pickups", str(tmp_path / "pickups.csv"))
    fieldkit(env, "checkin", "scan", PEOPLE[0][0])
    fieldkit(env, "pos", "pickup", "PU-100")
    _signup_and_peer_scan(config)
    token = store.add_kit(hq.engine, config.kit_id, config.site)
    # HQ sends a later list with a fourth guest: the sync agent keeps its downloaded copy too.
    put_document(hq.engine, "checkin.attendees", attendee_csv(PEOPLE + [HQ_PERSON]), "guests-v2.csv")
    fieldkit(env, "sync", "join", hq.url, token)
    fieldkit(env, "sync", "now")
    return env


def _signup_and_peer_scan(config) -> None:
    from checkin.peers import store_peer_event
    from checkin.validate import DoorRules
    from kit.service import make_context
    from kit.sitepeer import PeerEvent
    from lead.signups import add_signup

    ctx = make_context("test", config)
    try:
        with ctx.db.transaction() as conn:
            add_signup(conn, ctx.ledger, config, email=SIGNUP_EMAIL, consent=True, ticket=PEOPLE[1][0])
        event = PeerEvent(
            "checkin",
            "door2",
            1,
            0,
            str(uuid.uuid4()),
            "checkin.scanned",
            int(time.time() * 1000) << 16,
            {
                "door": "Door 2",
                "at": time.time(),
                "verdict": "admit",
                "admitted": True,
                "ticket_key": PEOPLE[2][0],
                "name": PEER_NAME,
                "ticket_type": "Day pass",
            },
        )
        with ctx.db.transaction() as conn:
            store_peer_event(conn, DoorRules.from_config(config), event)
    finally:
        ctx.db.close()


def test_erase_now_leaves_no_name_or_email_in_any_file_and_the_door_still_refuses_a_used_ticket(
    kit_env, config, hq, tmp_path
):
    env = populate(kit_env, config, hq, tmp_path)
    home = Path(kit_env["home"])
    logged = fieldkit(env, "incident", "add", "medical", "high", f"{INCIDENT_NAME} fainted at the bar")
    short = logged.stdout.split()[2]
    fieldkit(env, "incident", "resolve", short, "--note", f"went home with {RESOLVED_NAME}")
    fieldkit(env, "sync", "now")  # HQ holds the incident events too
    # Database snapshots: the old snapshots folder (kit/privacy.py SNAPSHOT_DIR) and the one an update
    # leaves behind when it is cut off (kit/update/apply.py snapshot_path): full copies of kit.db.
    (config.data_dir / "snapshots").mkdir()
    (config.data_dir / "updates").mkdir(exist_ok=True)
    for copy_path in (
        config.data_dir / "snapshots" / "kit-0.9.db",
        config.data_dir / "updates" / "snapshot.db",
    ):
        with sqlite3.connect(config.db_path) as live, sqlite3.connect(copy_path) as copy:
            live.backup(copy)
    before = files_holding(home, NEEDLES)
    assert any("snapshots" in f for f in before), before
    assert any("updates/snapshot.db" in f for f in before), before
    assert any("kit.db" in f for f in before), before  # the search finds them while they are there
    assert any("documents" in f for f in before), before
    assert set(NEEDLES) <= {n for hits in before.values() for n in hits}

    status = json.loads(fieldkit(env, "privacy", "status", "--json").stdout)
    places = {p["what"] for p in status["holds"]}
    assert any("checkin_tickets" in w for w in places) and any("pickup" in w for w in places)
    assert status["hq"]["all_held"] is True

    done = fieldkit(env, "privacy", "erase", "--now")
    assert "attendee names, e-mails and answers (checkin_tickets)" in done.stdout

    assert files_holding(home, NEEDLES) == {}
    assert (
        not Path(str(config.db_path) + "-wal").exists() or files_holding(config.db_path.parent, NEEDLES) == {}
    )
    # The door still knows who is in: the used ticket is refused, an unused one admits once.
    again = fieldkit(env, "checkin", "scan", PEOPLE[0][0], "--json", check_rc=2)
    assert json.loads(again.stdout)["verdict"] == "already_in"
    fresh = fieldkit(env, "checkin", "scan", PEOPLE[1][0], "--json")
    assert json.loads(fresh.stdout)["verdict"] == "admit"
    verified = fieldkit(env, "ledger", "verify")
    assert verified.stdout.startswith("OK")
    after = json.loads(fieldkit(env, "privacy", "status", "--json").stdout)
    assert after["holds"] == [] and after["last_erasure"]["forced"] is True
    # The erasure is in the ledger: what went and how many, never the data.
    tail = fieldkit(env, "ledger", "tail", "-n", "20").stdout
    line = next(x for x in tail.splitlines() if "kit.personal_data_erased" in x)
    assert '"attendee names, e-mails and answers (checkin_tickets)":4' in line
    assert '"incident resolution notes (lead_incident_actions)":1' in line
    # The incident stays on the board, without what was written about people.
    [kept] = json.loads(fieldkit(env, "incident", "list", "--json").stdout)["incidents"]
    assert (kept["category"], kept["state"], kept["note"]) == ("medical", "resolved", "")
    # Sync carries on, and HQ's chain check accepts a kit whose early events are gone from it.
    fieldkit(env, "sync", "now")
    from sync.hq.integrity import kit_integrity

    info = kit_integrity(hq.engine, config.kit_id)
    assert info["chain"].ok and info["missing"] == 0


def test_erase_is_refused_before_hq_holds_everything(kit_env, config, hq, tmp_path):
    env = kit_env["env"]
    (tmp_path / "guests.csv").write_bytes(attendee_csv(PEOPLE))
    fieldkit(env, "documents", "import", "checkin.attendees", str(tmp_path / "guests.csv"))
    not_joined = fieldkit(env, "privacy", "erase", check_rc=1)
    assert "not joined to an HQ" in not_joined.stderr and "--now" in not_joined.stderr
    fieldkit(env, "sync", "join", hq.url, store.add_kit(hq.engine, config.kit_id, config.site))
    fieldkit(env, "checkin", "scan", PEOPLE[0][0])  # not at HQ yet
    refused = fieldkit(env, "privacy", "erase", check_rc=1)
    assert "1 events and 0 personal records are not at HQ yet" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert files_holding(Path(kit_env["home"]), ["Quxwellborn"])  # nothing was erased
    fieldkit(env, "sync", "now")
    fieldkit(env, "privacy", "erase")
    assert files_holding(Path(kit_env["home"]), NEEDLES) == {}


def test_the_sync_service_erases_by_itself_when_due(kit_env, config, hq, tmp_path):
    env = populate(kit_env, config, hq, tmp_path)
    # The event ended a minute ago; erase 36 seconds after it ends (the test's short setting).
    ended = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 60))
    env = {
        **env,
        "FIELDKIT_KIT_EVENT_ENDS": ended + "+00:00",
        "FIELDKIT_PRIVACY_ERASE_AFTER_HOURS": "0.01",
        "FIELDKIT_SYNC_INTERVAL_SECONDS": "1",
    }
    log = (tmp_path / "sync.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kit", "run", "sync"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120  # a loaded machine: the service starts in seconds, not at once
        while time.monotonic() < deadline:
            status = json.loads(fieldkit(env, "privacy", "status", "--json").stdout)
            if status["last_erasure"] and not status["holds"]:  # files go a moment after the rows' commit
                break
            time.sleep(0.5)
        assert status["last_erasure"] and status["holds"] == [], (
            status,
            (tmp_path / "sync.log").read_text()[-3000:],
        )
        assert status["last_erasure"]["forced"] is False
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
    assert files_holding(Path(kit_env["home"]), NEEDLES) == {}
    assert fieldkit(env, "ledger", "verify").stdout.startswith("OK")


def test_erase_runs_while_the_kits_services_hold_the_database(kit_factory):
    kit = kit_factory(["web", "status", "checkin", "sync"])
    before = json.loads(kit.fieldkit("privacy", "status", "--json").stdout)
    assert any("checkin_tickets" in p["what"] for p in before["holds"])  # the demo's 300 guests
    done = kit.fieldkit("privacy", "erase", "--now", check=False)
    assert done.returncode == 0, done.stderr
    after = json.loads(kit.fieldkit("privacy", "status", "--json").stdout)
    assert after["holds"] == []
    kit.wait_healthy(["web", "checkin", "sync"])
    assert kit.fieldkit("ledger", "verify").stdout.startswith("OK")


def test_erase_waits_for_an_update_being_applied(kit_env, config, tmp_path):
    """Its rollback would put the update's snapshot (every name) back: not even --now erases under it."""
    env = kit_env["env"]
    (tmp_path / "guests.csv").write_bytes(attendee_csv(PEOPLE))
    fieldkit(env, "documents", "import", "checkin.attendees", str(tmp_path / "guests.csv"))
    journal = config.data_dir / "updates" / "journal.json"
    journal.parent.mkdir(exist_ok=True)
    journal.write_text(json.dumps({"id": "u1", "step": "trial", "to_version": "9.9.9"}))
    refused = fieldkit(env, "privacy", "erase", "--now", check_rc=1)
    assert "an update is being applied" in refused.stderr and "Traceback" not in refused.stderr
    assert files_holding(Path(kit_env["home"]), ["Quxwellborn"])  # nothing was erased
    journal.unlink()
    fieldkit(env, "privacy", "erase", "--now")
    assert files_holding(Path(kit_env["home"]), NEEDLES) == {}
