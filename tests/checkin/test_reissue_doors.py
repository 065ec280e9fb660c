"""Reissue across two doors, each kit with its own Mosquitto, bridged as on a site: the old code is refused
at both within a second, the new code admits once across both; revocations and lifts travel too, and a
hostile peer's revocation or reissue is dropped with a log line."""

from __future__ import annotations

import logging
import time
import uuid

import pytest

from checkin.documents import ATTENDEES
from checkin.reissue import lift, reissue, revoke
from kit.documents import import_document
from kit.sitelink import bridge_conf
from kit.testing import Mosquitto, wait_for
from tests.checkin.conftest import kit_config
from tests.checkin.test_doors import LinkProxy, verdict_at

pytestmark = pytest.mark.slow

GUESTS = (
    "Order code,Attendee name,Product,Secret,E-mail,Postcode\n"
    "ORD01,Anna Smith,Weekend,sec-anna,anna@example.org,N1 9GU\n"
    "ORD02,Ben Jones,VIP,sec-ben,ben@example.org,E2 7AA\n"
)


@pytest.fixture
def site(tmp_path, start_service):
    for name in ("hub-broker", "b-broker"):
        (tmp_path / name).mkdir()
    hub = Mosquitto(workdir=tmp_path / "hub-broker").start()
    link = LinkProxy(hub.port)
    broker_b = Mosquitto(
        workdir=tmp_path / "b-broker", extra_conf=bridge_conf("fair", "doorB", "127.0.0.1", link.port)
    ).start()
    config_a = kit_config(
        tmp_path / "a", hub.port, "doorA", "fair", checkin_door_name="Door 1", checkin_catchup_seconds=1
    )
    config_b = kit_config(
        tmp_path / "b", broker_b.port, "doorB", "fair", checkin_door_name="Door 2", checkin_catchup_seconds=1
    )
    a, b = start_service(config_a), start_service(config_b)
    for service in (a, b):  # every door holds the same guest list
        import_document(service.ctx.config, service.ctx.db, ATTENDEES, GUESTS.encode(), "guests.csv")
    wait_for(lambda: a.ctx.bus.is_connected and b.ctx.bus.is_connected, 10, what="both services connected")
    yield a, b, link
    link.close()
    broker_b.stop()
    hub.stop()


def refused_at(service, code: str) -> bool:
    """Whether the door refuses the code now, asked without recording a scan (the guest is not at this door)."""
    from checkin.validate import decide, find_ticket

    d = service.door
    with service.ctx.db.transaction() as conn:
        found = find_ticket(conn, code, d.keyring, False)
        return (
            decide(conn, d.rules, found, now=time.time(), direction="entry", rehearsal=False).verdict
            == "revoked"
        )


def test_reissue_reaches_the_other_door_within_a_second_and_the_new_code_admits_once(site):
    a, b, link = site
    # A screenshot of Anna's ticket got someone in at Door 2 before she arrived.
    assert verdict_at(b, "sec-anna")["verdict"] == "admit"
    wait_for(
        lambda: (
            a.ctx.db.scalar("SELECT COUNT(*) FROM checkin_peer_events WHERE ticket_key = 'sec-anna'") == 1
        ),
        10,
        what="door 1 hears of door 2's admission",
    )

    # Door 1's lead confirms it is Anna and reissues.
    started = time.monotonic()
    done = reissue(
        a.ctx.db,
        a.ctx.ledger,
        a.door.rules,
        a.door.keyring,
        "ORD01",
        "screenshot shared",
        by="lead",
        identity="second_check",
    )
    wait_for(lambda: refused_at(b, "sec-anna"), 5, what="door 2 refuses the old code")
    assert time.monotonic() - started < 1.0, "the old code must be refused at every door within a second"
    wait_for(
        lambda: (
            b.ctx.db.scalar(
                "SELECT COUNT(*) FROM checkin_tickets WHERE ticket_key = ?", (done["ticket_key"],)
            )
            == 1
        ),
        5,
        what="door 2 holds the new code",
    )

    for service in (a, b):
        old = verdict_at(service, "sec-anna")
        assert old["verdict"] == "revoked", service.door.rules.door
        assert f"reissued at {done['time']} at Door 1 (screenshot shared)" in old["reason"]
    # The peer added the new code as a list ticket of the same type, the name from its own list.
    row = b.ctx.db.query(
        "SELECT name, ticket_type, source FROM checkin_tickets WHERE ticket_key = ?", (done["ticket_key"],)
    )[0]
    assert (row["name"], row["ticket_type"], row["source"]) == ("Anna Smith", "Weekend", "reissue:doorA")

    # The new code admits once, across both doors.
    new = verdict_at(b, done["ticket_key"])
    assert (new["verdict"], new["name"]) == ("admit", "Anna Smith")
    wait_for(
        lambda: (
            a.ctx.db.scalar(
                "SELECT COUNT(*) FROM checkin_peer_events WHERE ticket_key = ?", (done["ticket_key"],)
            )
            == 1
        ),
        10,
        what="door 1 hears of the new code's admission",
    )
    again = verdict_at(a, done["ticket_key"])
    assert again["verdict"] == "already_in" and "Door 2" in again["reason"]
    # No person travels in the shared events.
    shared = " ".join(r[0] for r in b.ctx.db.query("SELECT payload FROM checkin_peer_events"))
    assert "Anna" not in shared and "anna@example.org" not in shared

    # A revocation and its lift at Door 2 reach Door 1, with the link cut in between (catch-up).
    revoke(b.ctx.db, b.ctx.ledger, b.door.rules, b.door.keyring, "sec-ben", "chargeback", by="lead")
    wait_for(lambda: refused_at(a, "sec-ben"), 5, what="door 1 refuses the revoked code")
    link.cut()
    lift(b.ctx.db, b.ctx.ledger, b.door.rules, b.door.keyring, "sec-ben", "chargeback withdrawn", by="lead")
    time.sleep(0.5)
    assert refused_at(a, "sec-ben")  # cannot know yet
    link.heal()
    wait_for(lambda: not refused_at(a, "sec-ben"), 20, what="the lift arrives after the partition")
    assert verdict_at(a, "sec-ben")["verdict"] == "admit"


def test_a_hostile_or_malformed_revocation_or_reissue_from_a_peer_is_dropped(site, caplog):
    a, b, _link = site
    link = b.door.link
    tickets_before = b.ctx.db.scalar("SELECT COUNT(*) FROM checkin_tickets")

    def msg(seq: int, type_: str, origin: str = "evil", **payload) -> dict:
        return {
            "origin_kit": origin,
            "seq": seq,
            "prev": seq - 1,
            "id": str(uuid.uuid4()),
            "type": type_,
            "hlc": 1,
            "payload": {"door": "Door 9", "at": time.time(), **payload},
        }

    caplog.set_level(logging.INFO)
    bad = [
        msg(
            1, "checkin.ticket_added", ticket_key="free-entry-for-all", replaces="sec-anna", ticket_type="VIP"
        ),
        msg(
            1, "checkin.ticket_added", ticket_key="RE-AAAA-BBBB-CCCC-DDDD", ticket_type="VIP"
        ),  # replaces nothing
        msg(
            1,
            "checkin.ticket_added",
            ticket_key="RE-AAAA-BBBB-CCCC-DDDD",
            replaces="sec-anna",
            ticket_type=["VIP"],
        ),
        msg(1, "checkin.revoked", ticket_key="sec-anna", status="deleted", reason="x"),
        msg(1, "checkin.revoked", ticket_key="", reason="x"),
        msg(1, "checkin.revoked", ticket_key="sec-anna", reissued="yes"),
        msg(1, "checkin.revocation_lifted", ticket_key={"$ne": ""}),
        msg(1, "checkin.revoked", ticket_key="sec-anna", at=float("inf")),
    ]
    for m in bad:
        assert link.receive("checkin", m) is False, m["payload"]
    refusals = [r for r in caplog.records if "event=peer_refused" in r.getMessage()]
    assert len(refusals) >= len(bad)
    # A well-formed reissue that would take over a code already on this kit's list is refused at store time.
    assert (
        link.receive(
            "checkin",
            msg(
                1,
                "checkin.ticket_added",
                ticket_key="RE-AAAA-BBBB-CCCC-DDDD",
                replaces="sec-anna",
                ticket_type="VIP",
            ),
        )
        is True
    )
    assert (
        link.receive(
            "checkin",
            msg(
                1,
                "checkin.ticket_added",
                "evil2",
                ticket_key="RE-AAAA-BBBB-CCCC-DDDD",
                replaces="sec-ben",
                ticket_type="VIP",
            ),
        )
        is False
    )
    assert b.ctx.db.scalar("SELECT COUNT(*) FROM checkin_tickets") == tickets_before + 1
    assert verdict_at(b, "sec-ben")["verdict"] == "admit"
