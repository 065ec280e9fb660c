"""The incident log: logged anywhere, shared by every kit of the site (through a cut and healed link),
acknowledged and resolved from any kit; the CLI and the API refuse what makes no sense, and a peer's
malformed incident is dropped with a log line."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

import pytest
from click.testing import CliRunner

from kit.clock import HLC_COUNTER_BITS
from kit.sitelink import bridge_conf
from kit.testing import Mosquitto, wait_for
from lead.incidents import acknowledge, list_incidents, log_incident, resolve
from tests.checkin.conftest import kit_config
from tests.checkin.test_doors import LinkProxy


def incidents(service) -> dict[str, dict]:
    return {i["note"]: i for i in list_incidents(service.ctx.db.conn)}


def write(service, fn, *args, **kwargs):
    with service.ctx.db.transaction() as conn:
        return fn(conn, service.ctx.ledger, *args, **kwargs)


@pytest.fixture
def two_kits(tmp_path, start_lead):
    """Kit A on the hub's broker, kit B on its own broker bridged to the hub's through a link that can be cut."""
    for name in ("hub-broker", "b-broker"):
        (tmp_path / name).mkdir()
    hub = Mosquitto(workdir=tmp_path / "hub-broker").start()
    link = LinkProxy(hub.port)
    broker_b = Mosquitto(workdir=tmp_path / "b-broker",
                         extra_conf=bridge_conf("fair", "merchB", "127.0.0.1", link.port)).start()
    a = start_lead(kit_config(tmp_path / "a", hub.port, "hubA", "fair", lead_catchup_seconds=2))
    b = start_lead(kit_config(tmp_path / "b", broker_b.port, "merchB", "fair", lead_catchup_seconds=2))
    yield a, b, link
    link.close()
    broker_b.stop()
    hub.stop()


@pytest.mark.slow
def test_incidents_are_shared_through_a_cut_and_healed_link_and_acted_on_from_either_kit(two_kits):
    a, b, link = two_kits
    first = write(a, log_incident, category="safety", severity="high", note="Barrier at gate 2 broken", by="door")
    wait_for(lambda: "Barrier at gate 2 broken" in incidents(b), 15, what="kit B holds kit A's incident")
    seen = incidents(b)["Barrier at gate 2 broken"]
    assert (seen["kit"], seen["by"], seen["category_label"], seen["severity"], seen["state"]) == (
        "hubA", "door", "Safety", "high", "open")

    link.cut()  # while the kits cannot see each other, both go on logging, and B takes on A's incident
    write(b, acknowledge, first["short"], by="lead")
    write(b, log_incident, category="lost_property", severity="low", note="Blue scarf at the bar", by="merch",
          concerns="merchB-0007")
    write(a, log_incident, category="medical", severity="medium", note="Guest fainted near the stage", by="lead")
    time.sleep(1.5)
    assert "Blue scarf at the bar" not in incidents(a)
    assert incidents(a)["Barrier at gate 2 broken"]["state"] == "open"

    link.heal()  # catch-up brings what each missed
    wait_for(lambda: len(incidents(a)) == 3 and len(incidents(b)) == 3, 30, what="both kits hold all three")
    wait_for(lambda: incidents(a)["Barrier at gate 2 broken"]["state"] == "acknowledged", 15,
             what="kit B's acknowledgement on kit A")
    acked = incidents(a)["Barrier at gate 2 broken"]["acknowledged"]
    assert (acked["by"], acked["kit"]) == ("lead", "merchB")
    assert incidents(a)["Blue scarf at the bar"]["concerns"] == "merchB-0007"

    # Resolved on kit A: kit B's board shows who closed it and how.
    write(a, resolve, first["id"], by="lead", note="Taped off, security told")
    wait_for(lambda: incidents(b)["Barrier at gate 2 broken"]["state"] == "resolved", 15, what="resolution on kit B")
    done = incidents(b)["Barrier at gate 2 broken"]["resolved"]
    assert (done["by"], done["kit"], done["note"]) == ("lead", "hubA", "Taped off, security told")
    for kit, other in ((a, "merchB"), (b, "hubA")):  # peers' events never enter a kit's own ledger
        assert kit.ctx.db.scalar("SELECT COUNT(*) FROM events WHERE kit = ?", (other,)) == 0
    assert [i["state"] for i in list_incidents(b.ctx.db.conn)] == ["open", "open", "resolved"]


@pytest.mark.slow
def test_a_malformed_or_hostile_incident_from_a_peer_is_dropped_with_a_log_line(two_kits, caplog):
    _a, b, _link = two_kits
    link = b.runner.link
    good = {"incident": str(uuid.uuid4()), "category": "tech", "severity": "low", "note": "Card terminal rebooted",
            "concerns": "", "auto": "", "by": "merch", "at": time.time()}
    hostile = [
        {**good, "category": "fire"},
        {**good, "severity": "apocalyptic"},
        {**good, "note": "   "},
        {**good, "note": "x" * 5000},
        {**good, "incident": "../../etc/passwd"},
        {**good, "at": float("inf")},
        {**good, "by": ["lead"]},
        {**good, "concerns": "<script>alert(1)</script>"},
        {**good, "auto": "self_destruct"},
        {k: v for k, v in good.items() if k != "concerns"},
    ]
    hlc = int(time.time() * 1000) << HLC_COUNTER_BITS
    with caplog.at_level(logging.WARNING, logger="fieldkit.sitelink"):
        for seq, payload in enumerate(hostile, start=1):
            link.on_peer_message("fieldkit/site/fair/lead/evilC", {
                "origin_kit": "evilC", "seq": seq, "prev": seq - 1, "id": str(uuid.uuid4()),
                "type": "lead.incident_logged", "hlc": hlc, "payload": payload})
        link.on_peer_message("fieldkit/site/fair/lead/evilC", {  # an acknowledgement with no incident id
            "origin_kit": "evilC", "seq": 20, "prev": 19, "id": str(uuid.uuid4()), "type": "lead.incident_acknowledged",
            "hlc": hlc, "payload": {"by": "lead", "at": time.time()}})
    refusals = [r.getMessage() for r in caplog.records if "event=peer_refused" in r.getMessage()]
    assert len(refusals) == len(hostile) + 1
    for field in ("payload_category", "payload_severity", "payload_note", "payload_incident", "payload_at",
                  "payload_by", "payload_concerns", "payload_auto"):
        assert any(f"reason={field}" in line for line in refusals), field
    time.sleep(0.5)
    assert b.ctx.db.scalar("SELECT COUNT(*) FROM lead_incidents") == 0
    assert b.ctx.db.scalar("SELECT COUNT(*) FROM lead_incident_actions") == 0

    # The same event, well formed, is kept: the refusals were about the fields, not the sender.
    assert link.receive("lead", {"origin_kit": "evilC", "seq": 1, "prev": 0, "id": str(uuid.uuid4()),
                                 "type": "lead.incident_logged", "hlc": hlc, "payload": good}, topic_kit="evilC")
    assert incidents(b)["Card terminal rebooted"]["kit"] == "evilC"


def test_the_cli_logs_lists_acknowledges_and_resolves_and_refuses_nonsense(kit_env):
    from kit.cli import cli

    def run(*args):
        return CliRunner().invoke(cli, ["incident", *args], env=kit_env["env"])

    made = run("add", "lost property", "low", "Keys found by the merch table", "--concerns", "test1-0003", "--by", "merch")
    assert made.exit_code == 0, made.output
    short = re.search(r"logged incident ([0-9a-f]{8})", made.output).group(1)
    assert run("add", "safety", "high", "Crowd pushing at the barrier").exit_code == 0
    listed = json.loads(run("list", "--json").output)["incidents"]
    assert [(i["category"], i["severity"], i["state"]) for i in listed] == [
        ("safety", "high", "open"), ("lost_property", "low", "open")]
    assert listed[1]["concerns"] == "test1-0003" and listed[1]["by"] == "merch"

    assert run("ack", short, "--by", "lead").exit_code == 0
    again = run("ack", short)
    assert again.exit_code == 1 and f"incident {short} is acknowledged already (lead at test1)" in again.output
    done = run("resolve", short, "--note", "Owner collected them")
    assert done.exit_code == 0 and f"incident {short} resolved" in done.output
    assert run("resolve", short).exit_code == 1
    text = run("list").output
    assert "RESOLVED" in text and "acknowledged" in text and "by lead at test1" in text and "(Owner collected them)" in text
    assert [i["state"] for i in json.loads(run("list", "--state", "open", "--json").output)["incidents"]] == ["open"]

    for args, said in (
            (("add", "safety", "high", "   "), "the note is empty"),
            (("add", "weather", "high", "Rain"), "unknown category 'weather'"),
            (("add", "safety", "extreme", "Rain"), "unknown severity 'extreme'"),
            (("ack", "0000aaaa"), "no incident '0000aaaa' on this kit"),
            (("resolve", "feedface-0000"), "no incident 'feedface-0000' on this kit"),
            (("ack", "x"), "no incident 'x'")):
        result = run(*args)
        assert result.exit_code == 1 and said in result.output, (args, result.output)
    assert len(json.loads(run("list", "--json").output)["incidents"]) == 2  # nothing refused was written


def test_notes_can_be_erased_and_the_incidents_stay(ctx):
    from lead.incidents import erase_notes

    with ctx.db.transaction() as conn:
        made = log_incident(conn, ctx.ledger, category="medical", severity="high", note="Ana Example fainted", by="door")
        resolve(conn, ctx.ledger, made["id"], by="lead", note="Ana Example went home with her sister")
    with ctx.db.transaction() as conn:
        assert erase_notes(conn) == 2
    [kept] = list_incidents(ctx.db.conn)
    assert (kept["category"], kept["state"], kept["note"], kept["resolved"]["note"]) == ("medical", "resolved", "", "")
    for table in ("lead_incidents", "lead_incident_actions"):
        assert ctx.db.scalar(f"SELECT COUNT(*) FROM {table} WHERE note LIKE '%Ana%'") == 0


def test_every_role_logs_from_the_header_and_only_a_lead_sees_the_board_and_acts(ctx, kit_env):
    from kit.web.app import create_app

    app = create_app(ctx)
    app.testing = True

    def signed_in(role):
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        client.post("/login", data={"pin": kit_env["pins"][role], "csrf_token": token})
        html = client.get("/incident").get_data(as_text=True)
        client.csrf = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)
        client.html = html
        return client

    def post(client, url, body=None):
        return client.post(url, json=body or {}, headers={"X-CSRF-Token": client.csrf})

    door = signed_in("door")
    assert 'href="/incident"' in door.get("/door").get_data(as_text=True)  # the header's entry, on the door page
    assert 'value="lost_property"' in door.html and 'value="high"' in door.html
    made = post(door, "/api/v1/lead/incidents", {"category": "access", "severity": "medium",
                                                  "note": "Guest says their code was screenshotted", "concerns": "ORD-4471"})
    assert made.status_code == 201 and made.json["by"] == "door" and made.json["state"] == "open"
    for body, said in (({"category": "access", "severity": "medium", "note": ""}, "the note is empty"),
                       ({"category": "parking", "severity": "medium", "note": "x"}, "unknown category"),
                       ({"category": "access", "severity": 3, "note": "x"}, "unknown severity"),
                       (["not", "an", "object"], "send")):
        refused = post(door, "/api/v1/lead/incidents", body)
        assert refused.status_code == 400 and said in refused.json["error"], body
    assert door.get("/lead/incidents").status_code == 403
    assert post(door, f"/api/v1/lead/incidents/{made.json['id']}/ack").status_code == 403

    lead = signed_in("lead")
    board = lead.get("/lead/incidents").get_data(as_text=True)
    assert "Guest says their code was screenshotted" in board and "concerns ORD-4471" in board
    assert re.search(r'id="col-open".*?<span class="count">1</span>', board, re.S)
    assert post(lead, "/api/v1/lead/incidents/ffffffff/ack").status_code == 400
    acked = post(lead, f"/api/v1/lead/incidents/{made.json['short']}/ack")
    assert acked.status_code == 200 and acked.json["acknowledged"]["by"] == "lead"
    resolved = post(lead, f"/api/v1/lead/incidents/{made.json['id']}/resolve", {"note": "New code issued"})
    assert resolved.status_code == 200 and resolved.json["state"] == "resolved"
    listed = lead.get("/api/v1/lead/incidents?state=resolved").json["incidents"]
    assert [i["resolved"]["note"] for i in listed] == ["New code issued"]
    assert lead.get("/api/v1/lead/incidents?state=lost").status_code == 400
    types = [r[0] for r in ctx.db.query("SELECT type FROM events WHERE type LIKE 'lead.incident%' ORDER BY seq")]
    assert types == ["lead.incident_logged", "lead.incident_acknowledged", "lead.incident_resolved"]
