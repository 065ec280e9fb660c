"""Incidents reach HQ with the normal ledger sync, and the report lists them per event: one row per incident
(one double admission logged by both doors is one row), who acknowledged and resolved it, on the report page,
in `fieldkit hq report` and in its CSV."""

from __future__ import annotations

import base64
import csv
import http.client
import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from kit.cli import cli
from kit.clock import KitClock
from kit.config import load_config
from kit.db import apply_migrations
from kit.features import all_migration_sets
from kit.ledger import Ledger
from kit.service import open_database
from lead.incidents import acknowledge, auto_incident_id, log_incident, resolve
from sync.agent import SyncAgent
from sync.hq import store
from sync.hq.reconcile import build_report
from sync.hq.render import render
from tests.sync.conftest import hq, hq_engine, hq_url_db  # noqa: F401 (the HQ fixtures)


def make_kit(home: Path, kit_id: str, server, engine):
    env = {"FIELDKIT_HOME": str(home), "FIELDKIT_KIT_ID": kit_id, "FIELDKIT_KIT_SITE": "market",
           "FIELDKIT_KIT_CLOCK_ASSUME_SYNCED": "1"}
    token = store.add_kit(engine, kit_id, "market")
    config = load_config({**env, "FIELDKIT_SYNC_HQ_URL": server.url, "FIELDKIT_SYNC_HQ_TOKEN": token})
    db = open_database(config)
    apply_migrations(db, all_migration_sets())
    return config, db, Ledger(kit_id, KitClock(config.data_dir, True))


@pytest.mark.parametrize("hq_url_db", ["sqlite"], indirect=True)
def test_hq_report_lists_the_sites_incidents_once_each_with_who_did_what(hq, tmp_path):  # noqa: F811
    kits = {k: make_kit(tmp_path / k, k, hq, hq.engine) for k in ("door1", "door2")}
    (c1, db1, l1), (_c2, db2, l2) = kits["door1"], kits["door2"]
    with db1.transaction() as conn:
        barrier = log_incident(conn, l1, category="safety", severity="high", note="Barrier at gate 2 broken", by="door")
        scarf = log_incident(conn, l1, category="lost_property", severity="low", note="Blue scarf at the bar",
                             by="merch", concerns="door1-0004")
        acknowledge(conn, l1, scarf["id"], by="lead")
        resolve(conn, l1, scarf["id"], by="lead", note="Owner collected it")
    double = auto_incident_id("double_admission", "SECRET-X", "door1@100", "door2@101")
    for db, ledger in ((db1, l1), (db2, l2)):  # both doors noticed the same double admission and logged it
        with db.transaction() as conn:
            log_incident(conn, ledger, category="access", severity="medium", note="Ticket admitted twice: Door 1 and Door 2",
                         concerns="SECRET-X", by="kit", auto="double_admission", incident=double)
    with db2.transaction() as conn:  # door2 holds door1's incident as a peer would; its acknowledgement is its own
        conn.execute("INSERT INTO lead_incidents (id, origin_kit, category, severity, note, concerns, auto, logged_by,"
                     " logged_at, hlc) VALUES (?,?,?,?,?,?,?,?,?,?)",
                     (barrier["id"], "door1", "safety", "high", barrier["note"], "", "", "door", barrier["at"], 1))
        acknowledge(conn, l2, barrier["id"], by="lead")
    for config, db, _ in kits.values():  # the normal ledger sync
        agent = SyncAgent(config, db)
        assert agent.run_session().parked == 0 and agent.state()["backlog"] == 0

    report = build_report(hq.engine, site="market")
    section = report.section("incidents")
    got = [dict(zip(section.columns, r, strict=True)) for r in section.rows]
    assert [(r["kit"], r["category"], r["severity"], r["note"], r["status"]) for r in got] == [
        ("door1", "safety", "high", "Barrier at gate 2 broken", "acknowledged"),
        ("door1", "lost property", "low", "Blue scarf at the bar", "resolved"),
        ("door1", "access", "medium", "Ticket admitted twice: Door 1 and Door 2", "open"),
    ]
    assert got[0]["acknowledged"].endswith("lead at door2") and got[0]["logged_by"] == "door"
    assert got[1]["resolved"].endswith("lead at door1: Owner collected it") and got[1]["concerns"] == "door1-0004"
    assert got[2]["logged_by"] == "the kit" and got[2]["concerns"] == "SECRET-X"

    # An open high-severity incident is a problem the report flags; resolved, it is not.
    with db1.transaction() as conn:
        log_incident(conn, l1, category="medical", severity="high", note="Guest fainted by the stage", by="lead")
    assert SyncAgent(c1, db1).run_session().parked == 0
    report = build_report(hq.engine, site="market")
    assert report.section("incidents").flagged == 1
    text = render(report, "text")
    assert "== Incidents — 1 problem(s)" in text and "Guest fainted by the stage" in text and "OPEN HIGH" in text
    table = list(csv.reader(io.StringIO(render(report, "csv", "incidents"))))
    assert table[0] == section.columns and len(table) == 5

    # `fieldkit hq report` and the report page say the same.
    result = CliRunner().invoke(cli,
                                ["hq", "report", "--site", "market", "--db", str(hq.engine.url)],
                                env={"FIELDKIT_HOME": str(tmp_path / "hq-home")})
    assert result.exit_code == 0, result.output
    assert "== Incidents" in result.output and "Barrier at gate 2 broken" in result.output
    token = store.add_admin(hq.engine, "alice")
    conn = http.client.HTTPConnection("127.0.0.1", hq.port, timeout=10)
    conn.request("GET", "/report?site=market",
                 headers={"Authorization": "Basic " + base64.b64encode(f"alice:{token}".encode()).decode()})
    page = conn.getresponse().read().decode()
    assert "Incidents" in page and "Blue scarf at the bar" in page and "Owner collected it" in page
    for _, db, _ in kits.values():
        db.close()
