"""Every verdict and door rule, as the door staff would see it (verdict, colour, words)."""

import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from checkin.documents import ATTENDEES, REVOCATIONS
from checkin.scans import CheckinError, manual_admit, set_mode, undo_scan
from checkin.stats import stats
from kit.documents import import_document
from kit.features import load_features
from kit.ledger import rebuild, verify

GUESTS = (
    "Order code,Attendee name,Product,Secret,E-mail,Requires special attention,Paid\n"
    "ORD01,Anna Smith,Regular,sec-anna,anna@example.org,No,Yes\n"
    "ORD02,Ben Jones,VIP,sec-ben,ben@example.org,Yes,Yes\n"
    "ORD03,Cleo Park,Regular,sec-cleo,cleo@example.org,,No\n"
)


@pytest.fixture
def guests(door):
    import_document(door.config, door.db, ATTENDEES, GUESTS.encode(), "guests.csv")
    return door


def test_signed_ticket_admits_then_already_in_with_door_and_time(door):
    code = door.ticket()
    first = door.scan(code)
    assert (first["verdict"], first["colour"], first["admitted"]) == ("admit", "green", True)
    again = door.scan(code + "\r\n")
    assert again["verdict"] == "already_in" and again["colour"] == "red"
    clock = time.strftime("%H:%M", time.gmtime(first["at"]))
    assert again["reason"] == f"Already checked in at {door.rules.door}, {clock}"


def test_list_ticket_attention_unpaid_and_unknown(guests):
    assert guests.scan("sec-anna")["verdict"] == "admit"
    ben = guests.scan("sec-ben")
    assert (ben["verdict"], ben["colour"], ben["attention"]) == ("admit", "amber", True)
    assert "special attention" in ben["reason"]
    cleo = guests.scan("sec-cleo")
    assert cleo["verdict"] == "revoked" and "not paid" in cleo["reason"]
    assert guests.scan("sec-nobody")["verdict"] == "unknown"


def test_garbage_of_every_kind_is_refused_and_recorded(door):
    for junk in (b"\xff\xfe\x00garbage", "x" * 10_000, "", "   ", "=" * 50, "\x1b[2J", b"\x80" * 300):
        result = door.scan(junk)
        assert result["verdict"] == "unknown" and result["colour"] == "red"
    assert door.db.scalar("SELECT COUNT(*) FROM checkin_scans WHERE verdict = 'unknown'") == 7
    assert verify(door.db)[1] == []


def test_unknown_key_is_invalid_signature(door):
    foreign = door.ticket(key=Ed25519PrivateKey.generate())
    assert door.scan(foreign)["verdict"] == "invalid_signature"


def test_revocation_list_revokes_and_blocks(door):
    revoked, blocked = door.ticket(seed="REVOKED01"), door.ticket(seed="BLOCKED01")
    import_document(door.config, door.db, REVOCATIONS, f"{revoked}\n{blocked},blocked\n".encode(), "rev.csv")
    assert door.scan(revoked)["verdict"] == "revoked"
    b = door.scan(blocked)
    assert (b["verdict"], b["colour"], b["admitted"]) == ("blocked", "amber", False)


def test_validity_window(door):
    now = time.time()
    early = door.scan(door.ticket(seed="EARLY0001", valid_from=int(now + 86400)))
    assert early["verdict"] == "not_yet_valid" and "valid from" in early["reason"]
    assert door.scan(door.ticket(seed="LATE00001", valid_until=int(now - 60)))["verdict"] == "expired"
    assert door.scan(door.ticket(seed="NOWOK0001", valid_from=int(now - 60), valid_until=int(now + 60)))["admitted"]


def test_door_rules_types_and_entry_windows(guests):
    vip_only = guests.with_rules(allowed_types=("vip",))
    refused = vip_only.scan("sec-anna")
    assert refused["verdict"] == "not_valid_at_this_door" and "Regular" in refused["reason"]
    assert vip_only.scan("sec-ben")["verdict"] == "admit"
    hour = time.gmtime().tm_hour
    closed = guests.with_rules(entry_windows=(f"{(hour + 2) % 24:02d}:00-{(hour + 3) % 24:02d}:00",))
    assert closed.scan(guests.ticket(seed="WINDOW001"))["verdict"] == "not_valid_at_this_door"
    open_ = guests.with_rules(entry_windows=(f"{(hour + 23) % 24:02d}:00-{(hour + 1) % 24:02d}:59",))
    assert open_.scan(guests.ticket(seed="WINDOW001"))["verdict"] == "admit"


def test_exit_reentry_and_no_reentry(door):
    code = door.ticket(seed="REENTRY01")
    assert door.scan(code)["verdict"] == "admit"
    set_mode(door.db, door.ledger, direction="exit")
    assert door.scan(code)["verdict"] == "exit"
    set_mode(door.db, door.ledger, direction="entry")
    assert door.scan(code)["verdict"] == "admit_reentry"
    strict = door.with_rules(reentry=False)
    code2 = door.ticket(seed="NOREENTRY")
    strict.scan(code2)
    strict.scan(code2, direction="exit")
    again = strict.scan(code2)
    assert again["verdict"] == "already_in" and "no re-entry" in again["reason"]


def test_undo_lets_the_ticket_in_again_and_is_its_own_event(door):
    code = door.ticket(seed="UNDO00001")
    first = door.scan(code)
    undo_scan(door.db, door.ledger, first["seq"], "scanned the wrong phone")
    assert door.scan(code)["verdict"] == "admit"
    assert door.db.scalar("SELECT COUNT(*) FROM events WHERE type = 'checkin.undone'") == 1
    with pytest.raises(CheckinError):
        undo_scan(door.db, door.ledger, first["seq"], "twice")
    refused = door.scan("nothing")
    with pytest.raises(CheckinError):
        undo_scan(door.db, door.ledger, refused["seq"], "not an admission")


def test_manual_admit_needs_a_reason_and_obeys_rules(guests):
    with pytest.raises(CheckinError):
        manual_admit(guests.db, guests.ledger, guests.rules, "sec-anna", "")
    done = manual_admit(guests.db, guests.ledger, guests.rules, "sec-anna", "phone dead, ID checked")
    assert done["verdict"] == "admit" and done["manual_reason"] == "phone dead, ID checked"
    assert guests.scan("sec-anna")["verdict"] == "already_in"
    assert manual_admit(guests.db, guests.ledger, guests.rules, "sec-cleo", "ID")["verdict"] == "revoked"


def test_rehearsal_scans_are_marked_and_kept_out_of_counts(guests):
    set_mode(guests.db, guests.ledger, rehearsal=True)
    r = guests.scan("sec-anna")
    assert r["verdict"] == "admit" and r["rehearsal"] is True
    assert guests.scan("sec-anna")["verdict"] == "already_in"
    set_mode(guests.db, guests.ledger, rehearsal=False)
    with guests.db.transaction() as conn:
        s = stats(conn, guests.rules)
    assert (s["in"], s["rehearsal_scans"], s["expected"]) == (0, 2, 2)
    assert guests.scan("sec-anna")["verdict"] == "admit"  # practice did not use the real ticket


def test_every_scan_is_in_the_ledger_and_rebuild_is_identical(guests):
    for code in ("sec-anna", "sec-ben", "sec-anna", "junk", guests.ticket()):
        guests.scan(code)
    undo_scan(guests.db, guests.ledger, 1, "mistake")
    set_mode(guests.db, guests.ledger, rehearsal=True)
    dump = "SELECT * FROM checkin_scans ORDER BY seq"
    before = [tuple(r) for r in guests.db.query(dump)]
    state_before = tuple(guests.db.query_one("SELECT * FROM checkin_door_state"))
    assert guests.db.scalar("SELECT COUNT(*) FROM events WHERE type = 'checkin.scanned'") == 5
    rebuild(guests.db, load_features())
    assert [tuple(r) for r in guests.db.query(dump)] == before
    assert tuple(guests.db.query_one("SELECT * FROM checkin_door_state")) == state_before


def test_exit_scans_refused_where_the_door_takes_none_and_bad_windows_are_a_clear_error(door):
    from kit.config import ConfigError

    no_exits = door.with_rules(exits=False)
    code = door.ticket(seed="NOEXIT001")
    no_exits.scan(code)
    refused = no_exits.scan(code, direction="exit")
    assert refused["verdict"] == "not_valid_at_this_door" and "does not record exits" in refused["reason"]
    with pytest.raises(ConfigError, match="not a time window"):
        type(door.rules).from_config(door.config.with_values(checkin__entry_windows=["8pm till late"]))
