"""Timed pickups: early says when to come back (a lead may override), in window hands over, late is recorded."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest

from kit.event_codec import unpack
from pos.pickups import PickupEarly, board, collect, lookup


def local(config, at: float) -> str:
    return datetime.fromtimestamp(at, config.tz).strftime("%Y-%m-%dT%H:%M")


@pytest.fixture
def timed(pos_kit):
    now = time.time()
    c = pos_kit.config
    rows = ["code,name,sku,qty,pickup_from,pickup_until",
            f"PU-EARLY,Eve Early,TS-L,1,{local(c, now + 3600)},{local(c, now + 7200)}",
            f"PU-OPEN,Owen Open,STICKER,2,{local(c, now - 600)},{local(c, now + 1200)}",
            f"PU-LATE,Lee Late,TS-L,1,{local(c, now - 7200)},{local(c, now - 3600)}",
            "PU-ANY,Ann Anytime,STICKER,1,,",
            f"PU-BAD,Bob Backwards,TS-L,1,{local(c, now + 600)},{local(c, now - 600)}"]
    _, report = pos_kit.import_doc("pos.pickups", "\n".join(rows).encode(), "pickups.csv")
    return pos_kit, report, now


def collected_timing(pos_kit, code: str) -> str:
    rows = pos_kit.db.query("SELECT payload FROM events WHERE type = 'pos.pickup_collected'")
    return next(p["timing"] for p in (json.loads(unpack(r["payload"])) for r in rows) if p["code"] == code)


def test_a_row_whose_window_ends_before_it_starts_is_refused_in_the_report(timed):
    _, report, _ = timed
    assert report.imported == 4
    assert [(row, reason) for row, reason in report.skipped] == [(6, "pickup_until is before pickup_from")]


def test_early_in_window_and_late_say_what_to_do(timed):
    pos_kit, _, now = timed
    tz = pos_kit.config.tz
    early = lookup(pos_kit.db.conn, "PU-EARLY", now, tz)
    assert early["timing"] == "early"
    assert early["verdict"] == f"early — come back at {datetime.fromtimestamp(now + 3600, tz):%H:%M}"
    assert lookup(pos_kit.db.conn, "PU-OPEN", now, tz)["verdict"] == "in window — hand over"
    assert lookup(pos_kit.db.conn, "PU-LATE", now, tz)["verdict"] == "late — hand over"
    assert lookup(pos_kit.db.conn, "PU-ANY", now, tz)["verdict"] == "hand over"

    with pytest.raises(PickupEarly, match="early — come back at .*a lead can hand it over now"):
        collect(pos_kit.db, pos_kit.ledger, "PU-EARLY", tz=tz)
    assert lookup(pos_kit.db.conn, "PU-EARLY")["collected_at"] is None  # nothing recorded
    assert collect(pos_kit.db, pos_kit.ledger, "PU-OPEN", tz=tz)["timing"] == "in_window"
    assert collect(pos_kit.db, pos_kit.ledger, "PU-LATE", tz=tz)["timing"] == "late"
    assert collect(pos_kit.db, pos_kit.ledger, "PU-EARLY", by="lead", tz=tz, early_ok=True)["timing"] == "early_override"
    assert [collected_timing(pos_kit, c) for c in ("PU-OPEN", "PU-LATE", "PU-EARLY")] == ["in_window", "late",
                                                                                          "early_override"]


def test_the_board_shows_due_collected_and_not_collected(timed):
    pos_kit, _, now = timed
    tz = pos_kit.config.tz
    collect(pos_kit.db, pos_kit.ledger, "PU-OPEN", tz=tz)
    b = board(pos_kit.db.conn, now, tz)
    assert [r["code"] for r in b["due"]] == ["PU-ANY"]  # PU-EARLY opens in an hour: not due in the next 30 min
    assert [r["code"] for r in b["collected"]] == ["PU-OPEN"]
    assert [r["code"] for r in b["not_collected"]] == ["PU-LATE"]
    assert [r["code"] for r in board(pos_kit.db.conn, now + 3000, tz)["due"]] == ["PU-ANY", "PU-EARLY"]
    assert b["collected"][0]["window"].count(":") == 2  # "19:50–20:20"


def test_over_the_api_only_a_lead_hands_over_early_and_the_board_page_lists_the_rows(timed, ctx, kit_env):
    from kit.web.app import create_app
    from tests.pos.test_web_api import _post, _sign_in

    pos_kit, _, _ = timed
    ctx.config = pos_kit.config
    app = create_app(ctx)
    app.testing = True
    merch = app.test_client()
    csrf = _sign_in(merch, kit_env["pins"]["merch"])
    r = _post(merch, csrf, "/api/v1/pos/pickups/PU-EARLY/collect", {})
    assert r.status_code == 409 and r.get_json()["code"] == "early" and "come back at" in r.get_json()["error"]
    assert _post(merch, csrf, "/api/v1/pos/pickups/PU-EARLY/collect", {"early_ok": True}).status_code == 403
    assert _post(merch, csrf, "/api/v1/pos/pickups/PU-LATE/collect", {}).get_json()["timing"] == "late"
    assert merch.get("/api/v1/pos/pickups/PU-OPEN").get_json()["verdict"] == "in window — hand over"
    page = merch.get("/merch/pickups").get_data(as_text=True)
    assert "Not collected in their window (0)" in page and "Collected (1)" in page and "PU-ANY" in page
    lead = app.test_client()
    csrf = _sign_in(lead, kit_env["pins"]["lead"])
    r = _post(lead, csrf, "/api/v1/pos/pickups/PU-EARLY/collect", {"early_ok": True})
    assert r.status_code == 200 and r.get_json()["timing"] == "early_override"


def test_a_window_opening_is_announced_once_for_the_cue_sheet(pos_kit, ctx, listen):
    from pos.service import PosService

    now = time.time()
    c = pos_kit.config
    rows = ["code,name,sku,qty,pickup_from", f"PU-1,A,TS-L,1,{local(c, now - 30)}", f"PU-2,B,TS-L,1,{local(c, now - 30)}",
            f"PU-OLD,C,TS-L,1,{local(c, now - 3600)}"]
    pos_kit.import_doc("pos.pickups", "\n".join(rows).encode(), "pickups.csv")
    ctx.config = pos_kit.config
    heard = listen(f"fieldkit/{c.kit_id}/pos/event/pickup_window")
    service = PosService(ctx)
    sent = service.announce_pickup_windows()
    opens = int(datetime.fromisoformat(local(c, now - 30)).replace(tzinfo=c.tz).timestamp())
    assert sent == [{"when": "opens", "opens_at": opens, "orders": 2}]  # the hour-old window is not announced late
    heard.wait(lambda m: len(m) == 1, 5, what="the window opening on the bus")
    service.next_window_check = 0.0
    assert PosService(ctx).announce_pickup_windows() == []  # a restart does not announce it again
