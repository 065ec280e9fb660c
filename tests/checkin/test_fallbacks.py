"""The door's fallbacks on one kit: revocation files that add up, reissue, the second check, a lead's lift,
consent columns, the command line and the HTTP API (real SQLite, the real broker for the API)."""

import json
import re

import pytest
from click.testing import CliRunner

from checkin.documents import ATTENDEES, REVOCATIONS
from checkin.reissue import REISSUED_RE, lift, print_job, reissue, revoke
from checkin.scans import CheckinError, manual_admit
from kit import topics
from kit.cli import cli
from kit.documents import import_document
from kit.event_codec import unpack
from kit.features import load_features
from kit.ledger import rebuild, verify

GUESTS = (
    "Order code,Attendee name,Product,Secret,E-mail,Phone,Postcode,Date of birth,Marketing opt-in,Newsletter\n"
    "ORD01,Anna Smith,Regular,sec-anna,anna@example.org,+44 7700 900123,N1 9GU,30.04.1990,yes,weekly\n"
    "ORD02,Ben Jones,VIP,sec-ben,ben@example.org,,,,no,\n"
    "ORD03,Cleo Park,Regular,sec-cleo,,,,,,\n"
    "ORD04,Dan Berg,Regular,sec-dan,dan@example.org,,,,,\n"
)


@pytest.fixture
def guests(door):
    import_document(door.config, door.db, ATTENDEES, GUESTS.encode(), "guests.csv")
    return door


def revocation_file(door, text: str, name: str):
    _, report = import_document(door.config, door.db, REVOCATIONS, text.encode(), name)
    return report


def test_revocation_files_add_up_and_a_minus_line_lifts_one(guests):
    first = revocation_file(guests, "secret\nsec-anna\nsec-ben,blocked\n", "first.txt")
    assert "added 2, changed 0, lifted 0" in " ".join(first.notes)
    second = revocation_file(guests, "sec-cleo\n", "second.txt")  # a second file never drops the first's
    assert "added 1, changed 0, lifted 0; 3 codes revoked" in " ".join(second.notes)
    assert guests.scan("sec-anna")["verdict"] == "revoked"
    assert guests.scan("sec-ben")["verdict"] == "blocked"
    assert guests.scan("sec-cleo")["verdict"] == "revoked"

    third = revocation_file(guests, "-sec-anna\n-sec-nobody\n", "third.txt")
    assert "added 0, changed 0, lifted 1; 2 codes revoked" in " ".join(third.notes)
    assert third.skipped == [(2, "lift of a code that is not revoked")]
    assert guests.scan("sec-anna")["verdict"] == "admit"
    assert guests.scan("sec-ben")["verdict"] == "blocked" and guests.scan("sec-cleo")["verdict"] == "revoked"

    # A ticket list import never removes a ticket: a shorter list leaves the others admissible.
    import_document(guests.config, guests.db, ATTENDEES, GUESTS.splitlines()[0].encode() + b"\n", "empty.csv")
    assert guests.scan("sec-dan")["verdict"] == "admit"


def test_reissue_revokes_the_old_code_and_the_new_one_admits_once(guests):
    before = guests.scan("sec-anna")  # the screenshot's owner got in with it already
    assert before["verdict"] == "admit"
    done = reissue(
        guests.db,
        guests.ledger,
        guests.rules,
        guests.keyring,
        "ORD01",
        "screenshot shared",
        by="lead",
        identity="second_check",
    )
    assert REISSUED_RE.match(done["ticket_key"]) and done["old_ticket_key"] == "sec-anna"
    assert (done["ticket_type"], done["name"]) == ("Regular", "Anna Smith")

    old = guests.scan("sec-anna")
    assert old["verdict"] == "revoked"
    assert old["reason"].startswith(
        f"Revoked — reissued at {done['time']} at {guests.rules.door} (screenshot shared)"
    )
    new = guests.scan(done["ticket_key"])
    assert (new["verdict"], new["name"], new["ticket_type"]) == ("admit", "Anna Smith", "Regular")
    assert guests.scan(done["ticket_key"])["verdict"] == "already_in"

    # Refused with a plain message: the old code again, an unknown ticket, no reason.
    for ticket, reason, words in (
        ("sec-anna", "again", "revoked already (reissued already)"),
        ("nope", "lost", "unknown ticket"),
        ("sec-ben", " ", "say why"),
    ):
        with pytest.raises(CheckinError, match=re.escape(words)):
            reissue(
                guests.db,
                guests.ledger,
                guests.rules,
                guests.keyring,
                ticket,
                reason,
                by="lead",
                identity="cli",
            )

    # The ledger holds the revocation and the new list entry, and no person's name or e-mail.
    events = guests.db.query("SELECT type, payload FROM events WHERE type LIKE 'checkin.%' ORDER BY seq")
    assert [e["type"] for e in events] == [
        "checkin.scanned",
        "checkin.revoked",
        "checkin.ticket_added",
        "checkin.scanned",
        "checkin.scanned",
        "checkin.scanned",
    ]
    text = " ".join(unpack(e["payload"]) for e in events)
    assert "Anna" not in text and "anna@example.org" not in text
    added = json.loads(unpack(events[2]["payload"]))
    assert (added["ticket_type"], added["replaces"], added["ticket_key"]) == (
        "Regular",
        "sec-anna",
        done["ticket_key"],
    )

    # A rebuild replays to the same verdicts, and the chain verifies.
    rebuild(guests.db, load_features())
    assert guests.scan("sec-anna")["verdict"] == "revoked"
    assert guests.scan(done["ticket_key"])["verdict"] == "already_in"
    assert verify(guests.db)[1] == []


def test_the_reissued_code_prints_as_an_escpos_qr_code_with_its_letters(guests):
    from drivers.printer import render
    from drivers.printer_decode import text_lines

    done = reissue(
        guests.db,
        guests.ledger,
        guests.rules,
        guests.keyring,
        "sec-ben",
        "lost phone",
        by="lead",
        identity="cli",
    )
    data = render(print_job(done, "Autumn Fair", "job1")["lines"], "TM-T20II")
    code = done["ticket_key"].encode()
    assert b"\x1d(k" in data and code in data  # GS ( k: the printer draws the QR code of the new code
    assert any(done["ticket_key"] in line for line in text_lines(data))
    assert b"Ben" not in data  # a slip left on the counter names no one


def test_second_check_needs_two_identifiers_that_match(guests):
    def admit(key, **given):
        return manual_admit(guests.db, guests.ledger, guests.rules, key, "", identifiers=given)

    with pytest.raises(CheckinError, match="postcode does not match"):
        admit("sec-anna", order_code="ORD01", postcode="N2 1AA")
    with pytest.raises(CheckinError, match=r"confirm two of: .*\(1 given\)"):
        admit("sec-anna", email="anna@example.org")
    with pytest.raises(CheckinError, match="last four digits"):
        admit("sec-anna", email="anna@example.org", phone_last4="12")
    with pytest.raises(CheckinError, match="holds only order code .*a lead can admit with a reason"):
        admit("sec-cleo", order_code="ORD03")
    with pytest.raises(CheckinError, match="holds no date of birth"):
        admit("sec-ben", order_code="ORD02", birth_date="1990-04-30")
    assert guests.db.scalar("SELECT COUNT(*) FROM checkin_scans") == 0  # a refused check records nothing

    done = admit("sec-anna", phone_last4="0123", birth_date="1990-04-30", postcode="n19gu")
    assert (done["verdict"], done["method"]) == ("admit", "second_check")
    assert done["manual_reason"] == "second check: phone's last four digits, date of birth, postcode"
    lead = manual_admit(guests.db, guests.ledger, guests.rules, "sec-cleo", "known to the lead")
    assert lead["method"] == "lead_override"
    assert guests.scan("sec-dan")["method"] == "scan"
    from checkin.counts import read_counts

    assert read_counts(guests.db.conn)["by_method"] == {"scan": 1, "second_check": 1, "lead_override": 1}


def test_a_lead_revokes_and_lifts_with_a_reason(guests):
    revoke(guests.db, guests.ledger, guests.rules, guests.keyring, "ORD04", "chargeback", by="lead")
    refused = guests.scan("sec-dan")
    assert refused["verdict"] == "revoked" and "(chargeback) — do not admit" in refused["reason"]
    with pytest.raises(CheckinError, match="revoked already"):
        revoke(guests.db, guests.ledger, guests.rules, guests.keyring, "sec-dan", "twice", by="lead")
    lift(guests.db, guests.ledger, guests.rules, guests.keyring, "sec-dan", "chargeback withdrawn", by="lead")
    assert guests.scan("sec-dan")["verdict"] == "admit"
    with pytest.raises(CheckinError, match="not revoked here"):
        lift(guests.db, guests.ledger, guests.rules, guests.keyring, "sec-dan", "again", by="lead")
    # A file's revocation is lifted the same way.
    revocation_file(guests, "sec-ben\n", "r.txt")
    lift(guests.db, guests.ledger, guests.rules, guests.keyring, "sec-ben", "refund reversed", by="lead")
    assert guests.scan("sec-ben")["verdict"] == "admit"
    kinds = [
        r[0] for r in guests.db.query("SELECT type FROM events WHERE type LIKE 'checkin.revo%' ORDER BY seq")
    ]
    assert kinds == ["checkin.revoked", "checkin.revocation_lifted", "checkin.revocation_lifted"]


def test_consent_columns_are_kept_and_the_setting_names_them(guests, config):
    row = guests.db.query(
        "SELECT consent, phone, postcode, birth_date FROM checkin_tickets WHERE ticket_key = 'sec-anna'"
    )[0]
    assert json.loads(row["consent"]) == {"Marketing opt-in": "yes"}
    assert (row["phone"], row["postcode"], row["birth_date"]) == ("+44 7700 900123", "N1 9GU", "1990-04-30")
    config.values["checkin.consent_columns"] = ["newsletter", "opt-in"]
    _, report = import_document(
        config, guests.db, ATTENDEES, GUESTS.replace("ORD01,", "ORD1A,").encode(), "again.csv"
    )
    assert "consent columns kept: 'Marketing opt-in', 'Newsletter'" in report.notes
    row = guests.db.query("SELECT consent FROM checkin_tickets WHERE ticket_key = 'sec-anna'")[0]
    assert json.loads(row["consent"]) == {"Marketing opt-in": "yes", "Newsletter": "weekly"}


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_cli_reissue_prints_the_new_code_and_refuses_plainly(kit_env, guests):
    done = run("checkin", "reissue", "ORD02", "--reason", "code shared", "--no-print")
    assert done.exit_code == 0, done.output + done.stderr
    new_code = re.search(r"new code: (RE-\S+)", done.output).group(1)
    assert guests.scan(new_code)["verdict"] == "admit" and guests.scan("sec-ben")["verdict"] == "revoked"
    again = run("checkin", "reissue", "sec-ben", "--reason", "again", "--no-print")
    assert again.exit_code == 2 and "revoked already" in again.stderr
    unknown = run("checkin", "reissue", "NOPE99", "--reason", "lost", "--no-print")
    assert unknown.exit_code == 2 and "unknown ticket" in unknown.stderr
    mismatch = run(
        "checkin",
        "reissue",
        "ORD01",
        "--reason",
        "lost",
        "--no-print",
        "--check",
        "email=x@y.org",
        "--check",
        "postcode=N1 9GU",
    )
    assert mismatch.exit_code == 2 and "e-mail does not match" in mismatch.stderr
    checked = run(
        "checkin", "admit", "ORD04", "--check", "order_code=ord04", "--check", "email=dan@example.org"
    )
    assert checked.exit_code == 0 and "second check" in checked.output
    wrong = run("checkin", "admit", "ORD01", "--check", "order_code=ORD01", "--check", "email=x@y.org")
    assert wrong.exit_code == 2 and "does not match" in wrong.stderr
    assert run("checkin", "revoke", "ORD01", "--reason", "chargeback").exit_code == 0
    assert run("checkin", "lift", "sec-anna", "--reason", "withdrawn").exit_code == 0
    assert run("checkin", "lift", "sec-anna", "--reason", "again").exit_code == 2
    assert "admitted by scan 1, second check 1, lead 0" in run("checkin", "stats").output


def test_reissue_over_http_needs_the_lead_and_the_guests_identifiers(ctx, door, kit_env, listen):
    from kit.web.app import create_app
    from tests.checkin.test_web import post, signed_in

    import_document(door.config, door.db, ATTENDEES, GUESTS.encode(), "guests.csv")
    app = create_app(ctx)
    app.testing = True
    jobs = listen(topics.cmd(ctx.config.kit_id, *topics.POS_PRINT))
    staff = signed_in(app, kit_env["pins"]["door"])
    body = {"ticket_key": "sec-anna", "reason": "screenshot shared"}
    assert post(staff, "/api/v1/checkin/reissue", body).status_code == 403
    no_check = post(staff, "/api/v1/checkin/reissue", {**body, "lead_pin": kit_env["pins"]["lead"]})
    assert no_check.status_code == 400 and "confirm two of" in no_check.json["error"]
    wrong = post(
        staff,
        "/api/v1/checkin/reissue",
        {
            **body,
            "lead_pin": kit_env["pins"]["lead"],
            "identifiers": {"email": "anna@example.org", "postcode": "E1"},
        },
    )
    assert wrong.status_code == 400 and "postcode does not match" in wrong.json["error"]
    done = post(
        staff,
        "/api/v1/checkin/reissue",
        {
            **body,
            "lead_pin": kit_env["pins"]["lead"],
            "identifiers": {"email": "anna@example.org", "postcode": "N19GU"},
        },
    )
    assert done.status_code == 200, done.json
    assert done.json["identity"] == "second_check" and done.json["qr_svg"].startswith("<svg")
    jobs.wait(lambda msgs: msgs, what="the new code sent to the receipt printer")
    lines = jobs.messages[0][1]["lines"]
    assert {"qr": done.json["ticket_key"]} in lines
    hits = staff.get("/api/v1/checkin/search?q=anna").json["results"]
    old = next(h for h in hits if h["ticket_key"] == "sec-anna")
    assert old["revoked"] and "reissued at" in old["admit_refusal"]
    assert next(h for h in hits if h["ticket_key"] == done.json["ticket_key"])["can_admit"] is True
    again = post(
        staff,
        "/api/v1/checkin/reissue",
        {
            **body,
            "lead_pin": kit_env["pins"]["lead"],
            "identifiers": {"email": "anna@example.org", "postcode": "N19GU"},
        },
    )
    assert again.status_code == 400 and "revoked already" in again.json["error"]
    # Cleo's list entry holds only her order code: the lead's word is the identity, recorded as such.
    cleo = post(
        staff,
        "/api/v1/checkin/reissue",
        {"ticket_key": "sec-cleo", "reason": "lost", "lead_pin": kit_env["pins"]["lead"]},
    )
    assert cleo.json["identity"] == "lead_override"


def test_the_evenings_numbers_count_admissions_by_method(guests):
    from kit.metrics import MetricEvent, evening_numbers

    guests.scan("sec-anna")
    manual_admit(
        guests.db,
        guests.ledger,
        guests.rules,
        "sec-ben",
        "",
        identifiers={"order_code": "ORD02", "email": "ben@example.org"},
    )
    manual_admit(guests.db, guests.ledger, guests.rules, "sec-cleo", "known to the lead")
    events = [
        MetricEvent(r["kit"], r["type"], json.loads(unpack(r["payload"])), 1.8e9 + r["seq"], r["id"])
        for r in guests.db.query("SELECT * FROM events ORDER BY seq")
    ]
    numbers = evening_numbers(events, guests.rules.tz, 4)
    assert numbers["attendance"]["admissions_by_method"] == {"scan": 1, "second_check": 1, "lead_override": 1}
    assert "second_check" in numbers["help"]["admissions_by_method"]


def test_hq_accepts_the_reissue_and_revocation_events_as_the_sync_agent_uploads_them(guests):
    from datetime import UTC, datetime

    from kit.ledger import Event
    from sync.client import outgoing
    from sync.hq.validate import validate_record

    done = reissue(
        guests.db, guests.ledger, guests.rules, guests.keyring, "sec-anna", "lost", by="lead", identity="cli"
    )
    lift(guests.db, guests.ledger, guests.rules, guests.keyring, "sec-anna", "found it", by="lead")
    rows = guests.db.query("SELECT * FROM events WHERE type LIKE 'checkin.%' ORDER BY seq")
    kinds = []
    for row in rows:
        line = json.loads(outgoing(Event.from_row(row)).line)
        stored = validate_record(line, guests.config.kit_id, datetime.now(UTC))
        kinds.append(stored["type"])
    assert kinds == ["checkin.revoked", "checkin.ticket_added", "checkin.revocation_lifted"]
    assert json.loads(unpack(rows[1]["payload"]))["ticket_key"] == done["ticket_key"]
