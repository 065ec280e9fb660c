"""`fieldkit metrics` reads this kit's own ledger and its attendee list, and says what each figure counts."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from click.testing import CliRunner

from kit.documents import import_document


def test_metrics_from_the_kits_ledger(kit_env, ctx):
    from kit.cli import cli

    import_document(ctx.config, ctx.db, "checkin.attendees",
                    b"code,name\n" + b"".join(f"T{i},Guest {i}\n".encode() for i in range(20)), "guests.csv")
    t = time.time() - 3600
    with ctx.db.transaction() as conn:
        for i, ticket in enumerate(("T1", "T2", "T3", "T4", "T5")):
            ctx.ledger.append(conn, "checkin.scanned", {"ticket_key": ticket, "verdict": "admit", "admitted": True,
                                                        "rehearsal": False, "at": t + i * 60})
        ctx.ledger.append(conn, "checkin.scanned", {"ticket_key": "T9", "verdict": "admit", "admitted": True,
                                                    "rehearsal": True, "at": t + 30})
        ctx.ledger.append(conn, "pos.sale", {"id": "s1", "kind": "sale", "total_cents": 2500, "lines": [],
                                             "at": datetime.fromtimestamp(t + 600, UTC).isoformat()})
    result = CliRunner().invoke(cli, ["metrics", "--json"], env=kit_env["env"])
    assert result.exit_code == 0, result.output
    n = json.loads(result.output)
    assert n["attendance"]["admitted"] == 5 and n["attendance"]["tickets_sold"] == 20
    assert n["attendance"]["attendance_percent"] == 25.0
    assert n["go_live"]["minutes_to_first_sale"] == 10.0 and n["conversion"]["sales_per_100"] == 20.0
    text = CliRunner().invoke(cli, ["metrics"], env=kit_env["env"]).output
    assert "admitted            5 of 20 tickets (25.0 %)" in text and "(10.0 min after doors open)" in text


def test_doors_open_is_said_once_an_evening(kit_env):
    from kit.cli import cli

    first = CliRunner().invoke(cli, ["runsheet", "doors-open"], env=kit_env["env"])
    assert first.exit_code == 0 and first.output.startswith("doors open at ")
    again = CliRunner().invoke(cli, ["runsheet", "doors-open"], env=kit_env["env"])
    assert again.exit_code == 1 and "the doors were already opened at" in again.output
    n = json.loads(CliRunner().invoke(cli, ["metrics", "--json"], env=kit_env["env"]).output)
    assert n["go_live"]["doors_open_at"] is not None and n["go_live"]["first_sale_at"] is None


def test_attendance_against_rsvps_where_the_list_carries_an_rsvp_status(kit_env, ctx):
    """A Luma-style export: 10 rows, 8 approved, 2 declined; 6 admitted → 60 % of tickets, 75 % of RSVPs."""
    from kit.cli import cli

    rows = b"".join(f"R{i},Guest {i},{'approved' if i < 8 else 'declined'}\n".encode() for i in range(10))
    _, report = import_document(ctx.config, ctx.db, "checkin.attendees", b"code,name,approval_status\n" + rows, "luma.csv")
    assert report.counts == {"rsvps": 8} and any("8 of 10 rows say they are coming" in n for n in report.notes)
    with ctx.db.transaction() as conn:
        for i in range(6):
            ctx.ledger.append(conn, "checkin.scanned", {"ticket_key": f"R{i}", "verdict": "admit", "admitted": True,
                                                        "rehearsal": False, "at": time.time() - 600 + i})
    n = json.loads(CliRunner().invoke(cli, ["metrics", "--json"], env=kit_env["env"]).output)["attendance"]
    assert (n["tickets_sold"], n["rsvps"], n["attendance_percent"], n["attendance_of_rsvps_percent"]) == (10, 8, 60.0, 75.0)
    text = CliRunner().invoke(cli, ["metrics"], env=kit_env["env"]).output
    assert "6 of 10 tickets (60.0 %), 75.0 % of 8 RSVPs" in text


def test_a_list_without_an_rsvp_column_says_nothing_about_rsvps(kit_env, ctx):
    from kit.cli import cli

    _, report = import_document(ctx.config, ctx.db, "checkin.attendees", b"code,name\nA1,Ann\n", "plain.csv")
    assert report.counts == {}
    n = json.loads(CliRunner().invoke(cli, ["metrics", "--json"], env=kit_env["env"]).output)["attendance"]
    assert n["rsvps"] is None and n["attendance_of_rsvps_percent"] is None
