"""The sync and HQ commands as a lead and an organiser type them."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from kit.cli import cli
from sync.hq import store
from tests.sync.conftest import append_events

sqlite_only = pytest.mark.parametrize("hq_url_db", ["sqlite"], indirect=True)


def invoke(*args: str, **kw):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, **kw)


@sqlite_only
def test_register_join_sync_now_and_status(ctx, hq, hq_url_db, tmp_path):
    result = invoke("hq", "kits", "add", "test1", "--site", "testsite", "--db", hq_url_db)
    assert result.exit_code == 0, result.output
    token = next(line.strip() for line in result.output.splitlines() if line.strip().startswith("fk_test1_"))
    assert invoke("hq", "kits", "add", "test1", "--site", "testsite", "--db", hq_url_db).exit_code == 1
    result = invoke("sync", "join", hq.url, token)
    assert result.exit_code == 0 and "HQ answers and knows this kit" in result.output
    assert token not in (tmp_path / "kit" / "fieldkit.toml").read_text()  # the secret stays in the state dir
    append_events(ctx.db, ctx.ledger, 1200)
    result = invoke("sync", "status")
    assert "Backlog:       1200 events" in result.output and "Last success:  never" in result.output
    result = invoke("sync", "now")
    assert result.exit_code == 0, result.output
    assert "Uploaded 1200 events (1200 new at HQ" in result.output
    assert "HQ has everything this kit recorded." in result.output
    assert "Uploading" in result.stderr  # the progress bar
    assert store.count_events(hq.engine, "test1") == 1200
    result = invoke("sync", "status")
    assert "Backlog:       0 events" in result.output
    listed = invoke("hq", "kits", "list", "--db", hq_url_db).output
    assert "test1" in listed and "events     1200" in listed


def test_sync_now_without_hq_says_what_waits(ctx, config):
    from kit.testing import free_port

    assert invoke("sync", "join", f"http://127.0.0.1:{free_port()}", "fk_test1_x").exit_code == 0
    append_events(ctx.db, ctx.ledger, 4)
    result = invoke("sync", "now")
    assert result.exit_code == 1
    assert "unreachable" in result.output and "4 events wait on the kit; nothing is lost." in result.output


def test_not_joined_is_one_clear_line(kit_env):
    result = invoke("sync", "now")
    assert result.exit_code == 1 and "fieldkit sync join" in result.output and "Traceback" not in result.output


@sqlite_only
def test_documents_put_list_settlements_and_report(hq_url_db, kit_env, tmp_path):
    catalogue = tmp_path / "catalogue.csv"
    catalogue.write_text("sku,name,price,stock\nTS,T-shirt,25.00,3\n")
    result = invoke("hq", "documents", "put", "pos.catalogue", str(catalogue), "--site", "market", "--db", hq_url_db)
    assert result.exit_code == 0 and "pos.catalogue version 1 for site market" in result.output
    result = invoke("hq", "documents", "put", "pos.catalogue", str(catalogue), "--site", "market", "--kit", "k",
                    "--db", hq_url_db)
    assert result.exit_code == 1 and "not both" in result.output
    assert "site:market" in invoke("hq", "documents", "list", "--db", hq_url_db).output
    settlement = tmp_path / "settle.csv"
    settlement.write_text("reference,amount,date\nR1,25.00,2026-11-21 19:00:00\nR2,abc,2026-11-21 19:00:00\n")
    result = invoke("hq", "settlements", "import", str(settlement), "--db", hq_url_db)
    assert "1 settlement lines imported" in result.output and "line 3: skipped" in result.output
    out = tmp_path / "report.html"
    result = invoke("hq", "report", "--site", "market", "--format", "html", "--out", str(out), "--db", hq_url_db)
    assert result.exit_code == 0 and "Reconciliation — site market" in out.read_text()
    text = invoke("hq", "report", "--db", hq_url_db).output
    assert "UNMATCHED SETTLEMENT" in text
    admin = invoke("hq", "admins", "add", "alice", "--db", hq_url_db)
    assert "fkadm_" in admin.output


def test_bad_database_url_is_one_clear_line(kit_env):
    result = invoke("hq", "kits", "list", "--db", "postgresql://nobody@127.0.0.1:1/none")
    assert result.exit_code == 1 and "cannot be reached" in result.output


def test_bridge_config_is_lossy_and_only_power(kit_env, monkeypatch):
    assert invoke("sync", "bridge-config").exit_code == 1
    monkeypatch.setenv("FIELDKIT_SYNC_TELEMETRY_HOST", "mqtt.hq.example.org")
    text = invoke("sync", "bridge-config").output
    assert "address mqtt.hq.example.org:8883" in text
    assert "topic fieldkit/test1/power/state out 0" in text and "LOSSY" in text
    assert "cleansession true" in text and "checkin" not in text and "pos" not in text


def test_hq_serve_runs_as_a_real_process(kit_env, tmp_path):
    import json
    import os
    import subprocess
    import sys
    import urllib.request

    from kit.testing import free_port, wait_for

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "kit", "hq", "serve", "--db", f"sqlite:///{tmp_path / 'hq.db'}",
                             "--port", str(port)], env=os.environ.copy(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        def health():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=1) as r:
                    return json.loads(r.read())
            except OSError:
                return None

        assert wait_for(health, timeout=20, what="HQ health")["status"] == "ok"
    finally:
        proc.terminate()
        proc.wait(10)


def test_doctor_says_whether_the_kit_syncs(config):
    from sync.doctor import checks

    assert checks(config)[0].level == "WARN" and "fieldkit sync join" in checks(config)[0].fix
    from sync.credentials import join

    joined = join(config, "http://hq.example.org", "fk_test1_x")
    assert "plain HTTP" in checks(joined)[0].message
    secure = join(config, "https://hq.example.org", "fk_test1_x")
    assert [c.level for c in checks(secure)] == ["OK"]
    from kit.service import open_database

    db = open_database(secure)
    with db.transaction() as conn:
        conn.execute("INSERT INTO sync_parked (seq, event_id, error, parked_at) VALUES (7, 'x', 'refused', 'now')")
    db.close()
    assert [c.level for c in checks(secure)] == ["OK", "WARN"] and "refused 1 record" in checks(secure)[1].message


@sqlite_only
def test_sync_now_waits_for_a_session_already_running(ctx, joined, hq):
    import threading

    from sync.agent import SessionLock

    append_events(ctx.db, ctx.ledger, 20)
    lock = SessionLock(joined.data_dir)
    lock.acquire()  # the sync service is mid-session
    threading.Timer(1.0, lock.release).start()
    result = invoke("sync", "now")
    assert result.exit_code == 0, result.output
    assert "waiting for it to finish" in result.output and "Uploaded 20 events" in result.output


@sqlite_only
def test_sync_now_does_not_claim_hq_has_everything_when_records_are_parked(ctx, joined, hq):
    from kit.ledger import Ledger

    with ctx.db.transaction() as conn:
        Ledger("oldname", ctx.clock).append(conn, "pos.sale", {"n": 1})  # written before the kit was renamed
    append_events(ctx.db, ctx.ledger, 2)
    result = invoke("sync", "now")
    assert result.exit_code == 0
    assert "HQ has everything" not in result.output
    assert "1 record(s) HQ refused are parked on the kit" in result.output
    status = invoke("sync", "status").output
    assert "Parked:        1 records HQ refused" in status and "belongs to kit 'oldname'" in status
