"""The checkin API and door page through Flask's test client, with the real broker and database."""

import re

import pytest

from checkin.demo import demo_setup
from kit import topics
from kit.web.app import create_app


@pytest.fixture
def app(ctx, door):
    application = create_app(ctx)
    application.testing = True
    return application


def signed_in(app, pin):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    client.post("/login", data={"pin": pin, "csrf_token": token})
    html = client.get("/door").get_data(as_text=True)
    client.csrf = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)
    return client


def post(client, url, body):
    return client.post(url, json=body, headers={"X-CSRF-Token": client.csrf})


def test_scan_api_answers_verdicts_and_publishes_them(app, kit_env, door, listen, config):
    events = listen(topics.event(config.kit_id, "checkin", "#"))
    client = signed_in(app, kit_env["pins"]["door"])
    code = door.ticket(seed="WEBTICKET")
    first = post(client, "/api/v1/checkin/scan", {"payload": code})
    assert first.status_code == 200 and first.json["verdict"] == "admit" and first.json["colour"] == "green"
    assert first.json["admitted_total"] == 1
    assert post(client, "/api/v1/checkin/scan", {"payload": code}).json["verdict"] == "already_in"
    assert post(client, "/api/v1/checkin/scan", {"payload": "\u0000" * 5000}).json["verdict"] == "unknown"
    for bad in ({}, {"payload": 5}, {"payload": "x", "direction": "sideways"}):
        r = post(client, "/api/v1/checkin/scan", bad)
        assert r.status_code == 400 and r.json["error"]
    scanned = topics.event(config.kit_id, *topics.CHECKIN_SCANNED)
    events.wait(lambda msgs: len([m for t, m in msgs if t == scanned]) == 3, what="three verdicts on the bus")
    assert [m["verdict"] for m in events.on(scanned)] == ["admit", "already_in", "unknown"]
    stats = client.get("/api/v1/checkin/stats").json
    assert stats["in"] == 1 and stats["refused"] == 2 and stats["last_scans"][0]["verdict"] == "unknown"


def test_roles_undo_is_for_leads_and_scan_needs_sign_in(app, kit_env, door):
    anonymous = app.test_client()
    assert anonymous.post("/api/v1/checkin/scan", json={"payload": "x"}).status_code in (400, 401)
    assert anonymous.get("/api/v1/checkin/stats").status_code == 401
    staff = signed_in(app, kit_env["pins"]["door"])
    seq = post(staff, "/api/v1/checkin/scan", {"payload": door.ticket(seed="UNDOWEB01")}).json["seq"]
    assert post(staff, "/api/v1/checkin/undo", {"seq": seq}).status_code == 403
    assert post(staff, "/api/v1/checkin/mode", {"rehearsal": True}).status_code == 403
    lead = signed_in(app, kit_env["pins"]["lead"])
    assert post(lead, "/api/v1/checkin/undo", {"seq": seq, "reason": "wrong phone"}).json["ok"] is True
    assert post(lead, "/api/v1/checkin/undo", {"seq": seq}).status_code == 400
    banner_hidden = re.compile(r'id="rehearsal-banner"[^>]*hidden')
    assert banner_hidden.search(lead.get("/door").get_data(as_text=True))
    assert post(lead, "/api/v1/checkin/mode", {"rehearsal": True}).json["rehearsal"] is True
    assert not banner_hidden.search(lead.get("/door").get_data(as_text=True))


def test_search_manual_admit_guestlist_and_demo_panel(app, kit_env, config, db, listen):
    demo_setup(config, db)
    commands = listen(topics.cmd(config.kit_id, "checkin", "simulate"))
    client = signed_in(app, kit_env["pins"]["door"])
    hits = client.get("/api/v1/checkin/search?q=anna").json["results"]
    assert hits and all("Anna" in h["name"] for h in hits)
    guest = hits[0]
    # Door staff admit by hand only by the second check; a reason alone needs the lead's PIN.
    assert {i["field"] for i in guest["identifiers"]} == {"order_code", "email", "phone_last4", "postcode"}
    assert set(guest["consent"]) == {"Marketing opt-in"}
    refused = post(client, "/api/v1/checkin/admit", {"ticket_key": guest["ticket_key"], "reason": "phone dead"})
    assert refused.status_code == 403 and "lead's PIN" in refused.json["error"]
    wrong_pin = post(client, "/api/v1/checkin/admit", {"ticket_key": guest["ticket_key"], "reason": "phone dead",
                                                       "lead_pin": "000000000"})
    assert wrong_pin.status_code == 403
    no_reason = post(client, "/api/v1/checkin/admit", {"ticket_key": guest["ticket_key"], "reason": "",
                                                       "lead_pin": kit_env["pins"]["lead"]})
    assert no_reason.status_code == 400 and "say why" in no_reason.json["error"]
    mismatch = post(client, "/api/v1/checkin/admit", {"ticket_key": guest["ticket_key"], "reason": "",
                                                      "identifiers": {"order_code": guest["order_code"],
                                                                      "email": "not.her@example.org"}})
    assert mismatch.status_code == 400 and "e-mail does not match" in mismatch.json["error"]
    admitted = post(client, "/api/v1/checkin/admit", {"ticket_key": guest["ticket_key"], "reason": "",
                                                      "identifiers": {"order_code": guest["order_code"].lower(),
                                                                      "email": guest["email"].upper()}})
    assert admitted.json["verdict"] == "admit" and admitted.json["method"] == "second_check"
    assert admitted.json["name"] == guest["name"]  # the screen's message joins the name; the ledger holds none
    other = hits[1]
    override = post(client, "/api/v1/checkin/admit", {"ticket_key": other["ticket_key"], "reason": "known to the lead",
                                                      "lead_pin": kit_env["pins"]["lead"]})
    assert override.json["method"] == "lead_override" and override.json["manual_reason"] == "known to the lead"
    assert client.get("/api/v1/checkin/stats").json["by_method"] == {"scan": 0, "second_check": 1,
                                                                   "lead_override": 1}
    assert guest["name"] not in db.query("SELECT payload FROM events WHERE type = 'checkin.scanned'")[0]["payload"]
    again = client.get("/api/v1/checkin/search?q=" + guest["order_code"]).json["results"][0]
    assert again["inside"] is True
    html = client.get("/door/guestlist").get_data(as_text=True)
    assert guest["name"] in html and "Guest list" in html
    page = client.get("/door").get_data(as_text=True)
    assert 'data-sample="wrong_day"' in page
    assert post(client, "/api/v1/checkin/demo/show", {"sample": "garbage", "source": "camera"}).json["ok"] is True
    commands.wait(lambda msgs: msgs, what="simulate command")
    assert commands.messages[0][1]["payload"].startswith("WIFI:")
    assert post(client, "/api/v1/checkin/demo/show", {"sample": "nonsense"}).status_code == 400


def test_openapi_lists_the_checkin_routes(app):
    spec = app.test_client().get("/api/v1/openapi.json").json
    assert "post" in spec["paths"]["/api/v1/checkin/scan"]
    assert "get" in spec["paths"]["/api/v1/checkin/stats"]


def test_lead_prints_the_practice_sheet_through_the_pos_print_queue(app, kit_env, config, listen):
    jobs = listen(topics.cmd(config.kit_id, *topics.POS_PRINT))
    staff = signed_in(app, kit_env["pins"]["door"])
    assert post(staff, "/api/v1/checkin/rehearsal-sheet/print", {}).status_code == 403
    lead = signed_in(app, kit_env["pins"]["lead"])
    answer = post(lead, "/api/v1/checkin/rehearsal-sheet/print", {}).json
    jobs.wait(lambda msgs: msgs, what="print job")
    job = jobs.messages[0][1]
    assert job["id"] == answer["id"] and job["source"] == "checkin.rehearsal"
    assert job["lines"][0]["text"] == "REHEARSAL ONLY" and job["lines"][-1] == {"cut": True}
    assert len([line for line in job["lines"] if "qr" in line]) == answer["tickets"] - 1  # the name drill has no code
    sheet = lead.get("/door/rehearsal-sheet").get_data(as_text=True)
    assert sheet.count("<img") == answer["tickets"] - 1
