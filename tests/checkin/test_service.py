"""The checkin service with simulated devices: a scanner on a pseudo-terminal, the camera, lights."""

import base64

from kit import topics
from kit.bus import Bus
from kit.service import open_database
from kit.testing import wait_for
from tests.checkin.conftest import kit_config, make_door


def test_scanner_and_camera_verdicts_reach_the_bus_lights_and_preview(tmp_path, mosquitto, start_service, recorder):
    config = kit_config(tmp_path / "kit", mosquitto.port, "svc1", checkin_camera_backend="sim",
                        checkin_feedback_backend="sim", checkin_share="false")
    helper = make_door(config, open_database(config))
    listener = Bus.from_config(config, "listener", will=False)
    assert listener.start(wait=5)
    listener.subscribe(topics.kit_wildcard("svc1"), recorder)
    service = start_service(config)
    door = service.door
    scanner = next(s for s in door.sources if s.name == "serial-scanner")
    scanned = topics.event("svc1", *topics.CHECKIN_SCANNED)

    # A handheld scanner types the code into its serial port (a real pty), CRLF-terminated.
    code = helper.ticket(seed="PTYTICKET")
    scanner.show(code)
    recorder.wait(lambda m: any(t == scanned for t, _ in m), 10, what="verdict from the serial scanner")
    verdict = recorder.on(scanned)[0]
    assert (verdict["verdict"], verdict["colour"], verdict["admitted_total"]) == ("admit", "green", 1)
    assert door.feedback.last_colour == "green"

    # The demo panel's command shows the same ticket to the simulated camera: refused, red light.
    listener.publish(topics.cmd("svc1", "checkin", "simulate"), {"payload": code, "source": "camera", "id": "r1"})
    recorder.wait(lambda m: len([1 for t, _ in m if t == scanned]) == 2, 15, what="verdict from the camera")
    second = recorder.on(scanned)[1]
    assert second["verdict"] == "already_in" and second["colour"] == "red"
    assert door.feedback.last_colour == "red"
    replies = recorder.on(topics.event("svc1", "checkin", "simulated"))
    assert replies[0] == {"id": "r1", "ok": True, "source": "camera"}
    sources = service.ctx.db.query("SELECT source FROM checkin_scans ORDER BY seq")
    assert [r[0] for r in sources] == ["serial-scanner", "camera"]

    # The door page's preview: JPEG frames from the camera, published on the local topic.
    wait_for(lambda: recorder.on("fieldkit/svc1/checkin/preview"), 10, what="preview frames")
    jpeg = base64.b64decode(recorder.on("fieldkit/svc1/checkin/preview")[-1]["jpeg"])
    assert jpeg[:2] == b"\xff\xd8"
    health = recorder.on(topics.health("svc1", "checkin"))
    assert health and health[-1]["state"] == "ok"
    listener.stop(clean=False)


def test_junk_from_the_scanner_is_refused_and_the_service_keeps_going(tmp_path, mosquitto, start_service, recorder):
    config = kit_config(tmp_path / "kit", mosquitto.port, "svc2", checkin_share="false")
    listener = Bus.from_config(config, "listener", will=False)
    assert listener.start(wait=5)
    listener.subscribe(topics.event("svc2", "checkin", "#"), recorder)
    service = start_service(config)
    scanner = next(s for s in service.door.sources if s.name == "serial-scanner")
    scanner.write_bytes(b"\xff\xfe\x00\x01binary junk\r\n")
    scanner.write_bytes(b"A" * 5000 + b"\r\n")
    scanner.show("hello")
    scanned = topics.event("svc2", *topics.CHECKIN_SCANNED)
    recorder.wait(lambda m: any(p.get("reason", "").startswith("Not on the guest list") and p.get("seq") for t, p in m
                                if t == scanned), 10, what="the last junk verdict")
    assert all(p["verdict"] == "unknown" for p in recorder.on(scanned))
    assert service.thread.is_alive()
    # An attendee list downloaded from HQ (sync did not apply it): the service imports it.
    from kit.payloads import downloads_dir

    hq_list = downloads_dir(config) / "checkin.attendees" / "hq-list.csv"
    hq_list.parent.mkdir(parents=True, exist_ok=True)
    hq_list.write_text("Order code,Attendee name,Secret\nHQ1,Hanna Q,hq-secret-1\n")
    listener.publish(topics.event("svc2", *topics.SYNC_DOCUMENT),
                     {"kind": "checkin.attendees", "path": str(hq_list), "applied": False})
    wait_for(lambda: service.ctx.db.scalar("SELECT name FROM checkin_tickets WHERE ticket_key = 'hq-secret-1'"), 10,
             what="document from HQ applied")
    assert service.ctx.db.scalar("SELECT source FROM kit_documents WHERE kind = 'checkin.attendees'") == "hq"
    listener.publish(topics.cmd("svc2", "checkin", "simulate"), {"payload": 12, "id": "bad"})
    recorder.wait(lambda m: any(p.get("id") == "bad" for _, p in m), 5, what="refusal of a bad command")
    assert recorder.on(topics.event("svc2", "checkin", "simulated"))[-1]["ok"] is False
    listener.stop(clean=False)
