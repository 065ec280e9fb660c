"""Attendee privacy on a kit that only the site's hub uplinks: HQ holds its events "through the hub"
(the relay's ``hq_upto`` in the hub's mirror acknowledgement), so `fieldkit privacy erase` goes ahead
without --now once the hub says HQ holds every event, and truncates the ledger up to the erasure."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from tests.kit.test_privacy_erase import PEOPLE, attendee_csv, fieldkit, files_holding

NAMES = [p[3] for p in PEOPLE] + [p[4] for p in PEOPLE]


def hub_acknowledges(config, upto: int, hq_upto: int) -> None:
    """What the kit's mirror sender records of the hub's acknowledgement (sync/mirror.py take_acks)."""
    with sqlite3.connect(config.db_path) as conn:
        conn.execute(
            "INSERT INTO sync_mirror_cursor (mirror, upto, hq_upto, acked_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(mirror) DO UPDATE SET upto = excluded.upto, hq_upto = excluded.hq_upto,"
            " acked_at = excluded.acked_at",
            ("hub1", upto, hq_upto, time.time()),
        )


def last_seq(config) -> int:
    with sqlite3.connect(config.db_path) as conn:
        return conn.execute("SELECT MAX(seq) FROM events").fetchone()[0]


def test_a_kit_whose_hub_relayed_its_events_is_erased_without_now_and_truncated(kit_env, config, tmp_path):
    env, home = kit_env["env"], Path(kit_env["home"])
    (tmp_path / "guests.csv").write_bytes(attendee_csv(PEOPLE))
    fieldkit(env, "documents", "import", "checkin.attendees", str(tmp_path / "guests.csv"))
    for person in PEOPLE:
        fieldkit(env, "checkin", "scan", person[0])
    refused = fieldkit(env, "privacy", "erase", check_rc=1)  # never joined, nothing relayed
    assert "not joined to an HQ" in refused.stderr

    last = last_seq(config)
    # The hub holds all but the newest event; its word that HQ holds more than it holds itself is not taken.
    hub_acknowledges(config, upto=last - 1, hq_upto=last + 100)
    status = json.loads(fieldkit(env, "privacy", "status", "--json").stdout)
    assert status["hq"]["acknowledged_seq"] == last - 1 and status["hq"]["all_held"] is False
    refused = fieldkit(env, "privacy", "erase", check_rc=1)
    assert "1 events and 0 personal records are not at HQ yet" in refused.stderr
    assert files_holding(home, NAMES)  # nothing went

    hub_acknowledges(config, upto=last, hq_upto=last)  # the relay uplinked the rest
    done = fieldkit(env, "privacy", "erase")
    assert "checkin_tickets" in done.stdout
    after = json.loads(fieldkit(env, "privacy", "status", "--json").stdout)
    assert after["holds"] == [] and after["last_erasure"]["forced"] is False
    assert after["ledger"]["checkpoint_seq"] >= last  # truncated up to the erasure
    assert files_holding(home, NAMES) == {}
    assert fieldkit(env, "ledger", "verify").stdout.startswith("OK")
