"""Attendee lists from pretix, Eventbrite, Tito and plain CSV, with the mess real exports carry."""

import random

import pytest

from checkin.attendees import import_attendees, importer_for
from checkin.documents import ATTENDEES
from checkin.search import search_tickets
from kit.documents import DocumentError, import_document

PRETIX = (
    "\ufeffOrder code;Attendee name;Product;Price;Checked in;Secret;E-mail;Requires special attention;Comment\n"
    "ABC12;Zoë Müller;Weekend pass;50.00;;s3cr3t-zoe;zoe@example.org;Yes;wheelchair\n"
    "ABC13;Tom Berg;Day pass;20.00;;s3cr3t-tom;tom@example.org;No;\n"
)
EVENTBRITE = (
    "Order # ,Order Date,First Name,Last Name,Email ,Quantity,Ticket Type,Attendee # ,Barcode # ,Attendee Status\n"
    "1001,2026-10-01,Ada,Lovelace,ada@example.org,1,General Admission,1,1234567890123456789,Attending\n"
    "1002,2026-10-01,Alan,Turing,alan@example.org,1,General Admission,2,1234567890123456790,Refunded\n"
)
TITO = (
    "Ticket Reference,Ticket Full Name,Ticket First Name,Ticket Last Name,Ticket Email,Ticket,Void Status,Tags\n"
    "GIAO-1,Grace Hopper,Grace,Hopper,grace@example.org,Speaker,,\n"
    "GIAO-2,Edsger Dijkstra,Edsger,Dijkstra,ed@example.org,Attendee,void,\n"
)


def tickets(db):
    return {r["ticket_key"]: dict(r) for r in db.query("SELECT * FROM checkin_tickets")}


def test_pretix_semicolons_bom_and_attention(config, db):
    _, report = import_document(config, db, ATTENDEES, PRETIX.encode("utf-8"), "pretix.csv")
    assert (report.imported, report.skipped) == (2, [])
    zoe = tickets(db)["s3cr3t-zoe"]
    assert (zoe["name"], zoe["last_name"], zoe["ticket_type"], zoe["attention"]) == ("Zoë Müller", "Müller", "Weekend pass", 1)
    assert "format pretix" in report.notes[0]


def test_eventbrite_trailing_spaces_and_refunds(config, db):
    import_document(config, db, ATTENDEES, EVENTBRITE.encode(), "eb.csv")
    rows = tickets(db)
    assert rows["1234567890123456789"]["name"] == "Ada Lovelace"
    assert rows["1234567890123456789"]["status"] == "valid"
    assert rows["1234567890123456790"]["status"] == "revoked"
    assert rows["1234567890123456789"]["order_code"] == "1001"


def test_tito_reference_is_the_code_and_void_is_revoked(config, db):
    _, report = import_document(config, db, ATTENDEES, TITO.encode(), "tito.csv")
    rows = tickets(db)
    assert rows["GIAO-1"]["name"] == "Grace Hopper" and rows["GIAO-1"]["ticket_type"] == "Speaker"
    assert rows["GIAO-2"]["status"] == "revoked"
    assert "format tito" in report.notes[0]


def test_generic_csv_tabs_cp1252_and_skips_with_reasons(config, db):
    text = "CODE\tNAME\tTYPE\tDATE\n" "c1\tJosé Ñandú\tKids\t2026-11-24\n" "\tNo Code\tKids\t\n" "c1\tDup\tKids\t\n" \
           "c2\tBad Date\tKids\tnext friday\n"
    _, report = import_document(config, db, ATTENDEES, text.encode("cp1252"), "list.txt")
    assert report.imported == 1
    reasons = dict(report.skipped)
    assert reasons[3] == "no ticket code and no order code"
    assert reasons[4] == "same ticket as row 2"
    assert "is not a date" in reasons[5]
    row = tickets(db)["c1"]
    assert row["name"] == "José Ñandú" and row["valid_from"] < row["valid_until"]
    assert any("Windows-1252" in n for n in report.notes)


def test_reimport_updates_and_never_duplicates(config, db):
    import_document(config, db, ATTENDEES, PRETIX.encode(), "v1.csv")
    changed = PRETIX.replace("Tom Berg", "Tom Berger")
    _, report = import_document(config, db, ATTENDEES, changed.encode(), "v2.csv")
    assert (report.imported, report.updated, report.unchanged) == (0, 1, 1)
    assert db.scalar("SELECT COUNT(*) FROM checkin_tickets") == 2
    assert db.scalar("SELECT MAX(version) FROM kit_documents WHERE kind = ?", (ATTENDEES,)) == 2


def test_a_file_with_no_code_column_is_refused_whole(config, db):
    with pytest.raises(DocumentError, match="no ticket code or order column"):
        import_document(config, db, ATTENDEES, b"Name,Colour\nAnna,red\n", "x.csv")
    with pytest.raises(DocumentError, match="empty"):
        import_document(config, db, ATTENDEES, b"", "x.csv")
    assert db.scalar("SELECT COUNT(*) FROM checkin_tickets") == 0


def test_forced_format_is_reported(config, db):
    with db.transaction() as conn:
        report = importer_for("eventbrite")(conn, PRETIX.encode(), "p.csv", config)
    assert report.imported == 2 and "format eventbrite" in report.notes[0]


FIRST = ["Anna", "Ben", "Chloé", "Dario", "Eva", "Farid", "Greta", "Hiro", "Ines", "Jonas"]
LAST = ["Smith", "Jones", "Müller", "Rossi", "García", "Nakamura", "Okafor", "Berg", "Novak", "Lee"]


def big_list(n: int, seed: int = 7) -> bytes:
    rnd = random.Random(seed)
    lines = ["Order code,Attendee name,Product,Secret,E-mail"]
    for i in range(n):
        first, last = FIRST[i % 10], LAST[(i // 10) % 10]
        lines.append(f"O{i:06d},{first} {last} {i},{rnd.choice(['Day', 'VIP'])},secret{i:06d},{first.lower()}{i}@example.org")
    return ("\n".join(lines) + "\n").encode()


def test_100k_rows_import_and_search_by_name_email_and_order(config, db, door):
    seen = []
    _, report = import_document(config, db, ATTENDEES, big_list(100_000), "big.csv",
                                progress=lambda done, total: seen.append((done, total)))
    assert report.imported == 100_000 and seen[-1] == (100_000, 100_000)
    with db.transaction() as conn:
        by_name = search_tickets(conn, door.rules, "chlo mül")
        assert by_name and all("Chloé" in r["name"] and "Müller" in r["name"] for r in by_name)
        assert [r["order_code"] for r in search_tickets(conn, door.rules, "O004242")] == ["O004242"]
        assert search_tickets(conn, door.rules, "jonas99999@example.org")[0]["order_code"] == "O099999"
    door.scan("secret004242")
    with db.transaction() as conn:
        hit = search_tickets(conn, door.rules, "O004242")[0]
    assert hit["inside"] is True and hit["checked_in"].startswith(door.rules.door)


def test_import_runs_with_an_explicit_transaction(config, db):
    with db.transaction() as conn:
        report = import_attendees(conn, PRETIX.encode(), "p.csv", config)
    assert report.imported == 2
