"""What a lead sees of the kit's personal data: `fieldkit privacy status` and the dashboard's panel agree."""

from __future__ import annotations

import io
import re

from kit.documents import import_document
from kit.features import load_features
from kit.privacy import ErasureRefused, erase, hooks_from, status

GUESTS = b"Order code,Attendee name,E-mail,Secret,Product\nORD1,Ana Quxwellborn,ana@privacy-test.example,SECA1,Day pass\n"


def sign_in_lead(client, pin):
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    client.post("/login", data={"pin": pin, "csrf_token": token})


def test_status_says_where_personal_data_is_and_when_it_goes(config, db):
    hooks = hooks_from(load_features())
    assert status(db, config, hooks)["holds"] == []
    import_document(config, db, "checkin.attendees", GUESTS, "guests.csv")
    state = status(db, config, hooks)
    places = {(p["feature"], p["what"]): p["count"] for p in state["holds"]}
    assert places[("checkin", "attendee names, e-mails and answers (checkin_tickets)")] == 1
    assert places[("checkin", "raw copies of checkin.attendees documents (files)")] == 1
    assert "kit.event_ends is not set" in state["message"] and state["due_at"] is None
    timed = config.with_values(kit__event_ends="2026-11-21T23:30", kit__timezone="Europe/Berlin")
    state = status(db, timed, hooks)
    assert state["due_at"] == "2026-11-22T22:30:00+00:00"  # 23:30 in Berlin is 22:30 UTC, plus 24 hours
    assert "not joined to an HQ" in state["message"]
    assert "checkin_tickets" in str(state["holds"])  # counting changed nothing


def test_bad_event_end_is_said_plainly_and_nothing_is_erased(config, db, ctx):
    import_document(config, db, "checkin.attendees", GUESTS, "guests.csv")
    bad = config.with_values(kit__event_ends="tomorrow-ish")
    assert "kit.event_ends cannot be read" in status(db, bad, hooks_from(load_features()))["message"]
    try:
        erase(db, bad, ctx.ledger, hooks_from(load_features()), forced=False)
    except ErasureRefused as e:
        assert "not joined to an HQ" in str(e)
    else:
        raise AssertionError("erase without --now on a kit not joined to an HQ must be refused")


def test_the_dashboard_shows_the_same(app, config, db, kit_env):
    import_document(config, db, "checkin.attendees", GUESTS, "guests.csv")
    client = app.test_client()
    sign_in_lead(client, kit_env["pins"]["lead"])
    html = client.get("/").get_data(as_text=True)
    assert 'id="privacy"' in html and "attendee names, e-mails and answers (checkin_tickets)" in html
    assert "kit.event_ends is not set" in html
    api = client.get("/api/v1/privacy").json
    assert api["holds"][0]["count"] == 1


def test_an_upload_previewed_on_the_dashboard_and_never_imported_is_erased_too(app, config, db, ctx, kit_env):
    client = app.test_client()
    sign_in_lead(client, kit_env["pins"]["lead"])
    page = client.get("/documents").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    answer = client.post(
        "/api/v1/documents/preview",
        headers={"X-CSRF-Token": token},
        data={"kind": "checkin.attendees", "file": (io.BytesIO(GUESTS), "guests.csv")},
    )
    assert answer.status_code == 200, answer.json
    uploads = config.data_dir / "uploads"
    assert any(b"Quxwellborn" in p.read_bytes() for p in uploads.iterdir())
    held = {p["what"]: p["count"] for p in status(db, config, hooks_from(load_features()))["holds"]}
    assert held["documents uploaded on the dashboard, not imported (files)"] == 2  # the file and its note
    erase(db, config, ctx.ledger, hooks_from(load_features()), forced=True)
    assert list(uploads.iterdir()) == []


def test_a_pickup_is_recorded_by_its_code_not_the_persons_name(config, db, ctx):
    from pos.pickups import collect

    import_document(config, db, "pos.pickups", b"code,name,sku,qty\nPU-7,Ezra Plumtravisk,TS-L,1\n", "p.csv")
    order = collect(db, ctx.ledger, "PU-7")
    assert order["name"] == "Ezra Plumtravisk"  # the screen still shows who it is for
    payload = db.scalar("SELECT payload FROM events WHERE type = 'pos.pickup_collected'")
    assert "PU-7" in payload and "Plumtravisk" not in payload


def test_a_compaction_cut_short_by_a_crash_is_done_at_the_next_check(config, db, ctx):
    from kit.privacy import last_erasure, tick

    import_document(config, db, "checkin.attendees", GUESTS, "guests.csv")
    erase(db, config, ctx.ledger, hooks_from(load_features()), forced=True)
    assert last_erasure(db)["compacted_at"] is not None
    with db.transaction() as conn:  # as if the process died between the erasure's commit and its VACUUM
        conn.execute("UPDATE kit_privacy_erasures SET compacted_at = NULL")
    tick(db, config, ctx.ledger, hooks_from(load_features()))
    assert last_erasure(db)["compacted_at"] is not None
