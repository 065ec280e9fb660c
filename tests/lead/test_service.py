"""The lead service on a real broker: slot moments announced once, and the run-sheet shared between kits.

Slots here last seconds, not minutes, so the test watches a whole evening run; the code paths are the
same as for a 20-minute slot (times are the kit's clock, moments are announced by the service loop).
"""

from __future__ import annotations

import time

import pytest

from kit.documents import DocumentError, import_document
from kit.sitelink import bridge_conf
from kit.testing import Mosquitto, wait_for
from lead.documents import KIND
from lead.evening import running_late
from tests.checkin.conftest import kit_config
from tests.checkin.test_doors import LinkProxy
from tests.lead.conftest import runsheet_text

pytestmark = pytest.mark.slow


def slot_moments(recorder, kit: str) -> list[tuple[str, str]]:
    return [(p["when"], p["slot"]) for p in recorder.on(f"fieldkit/{kit}/lead/event/slot")]


def test_every_slot_moment_is_announced_once_in_order_and_not_again_after_a_restart(tmp_path, mosquitto, start_lead,
                                                                                       recorder):
    from kit.bus import Bus

    config = kit_config(tmp_path / "k", mosquitto.port, "stage1", "fair", lead_ending_seconds=2)
    listener = Bus.from_config(config, "listener", will=False)
    assert listener.start(wait=5)
    listener.subscribe("fieldkit/stage1/lead/#", recorder, qos=1)
    lead = start_lead(config)
    start = time.time() + 1.5
    lead.import_runsheet(runsheet_text(config.tz, start, [("Poetry", 0.1), ("Open mic", 0.1)]))  # 6 s each
    expected = [("start", "Poetry"), ("ending", "Poetry"), ("end", "Poetry"), ("start", "Open mic"),
                ("ending", "Open mic"), ("end", "Open mic")]
    recorder.wait(lambda _m: len(slot_moments(recorder, "stage1")) >= 6, 20, what="the whole evening announced")
    assert slot_moments(recorder, "stage1") == expected
    first = recorder.on("fieldkit/stage1/lead/event/slot")[0]
    assert first["index"] == 0 and first["stage"] == "Bench" and abs(first["starts_at"] - start) < 1
    states = recorder.on("fieldkit/stage1/lead/state")
    assert any(s["current"] and s["current"]["name"] == "Open mic" for s in states)
    assert states[-1]["finished"] is True
    recorded = [r["type"] for r in lead.ctx.db.query("SELECT type FROM events WHERE type LIKE 'lead.slot_%' ORDER BY seq")]
    assert recorded == ["lead.slot_started", "lead.slot_ended", "lead.slot_started", "lead.slot_ended"]  # for the numbers

    lead.stop()  # a restart inside the grace period must not announce anything twice
    recorder.messages.clear()
    start_lead(config)
    time.sleep(2)
    assert slot_moments(recorder, "stage1") == []
    listener.stop()


def test_a_broken_run_sheet_is_refused_whole_and_the_running_one_stays(tmp_path, mosquitto, start_lead):
    config = kit_config(tmp_path / "k", mosquitto.port, "stage1", "fair")
    lead = start_lead(config)
    good = runsheet_text(config.tz, time.time() + 600, [("Poetry", 20), ("Open mic", 30)])
    lead.import_runsheet(good)
    broken = good.replace("minutes = 30", "minutes = 30\ncolour = \"red\"")
    with pytest.raises(DocumentError, match="line 13: slot 2 \\(Open mic\\): unknown key 'colour'"):
        import_document(config, lead.ctx.db, KIND, broken.encode(), "broken.toml")
    wait_for(lambda: lead.runner.evening.sheet is not None, 5, what="the good sheet folded")
    assert [t.slot.name for t in lead.runner.evening.slots] == ["Poetry", "Open mic"]


def test_two_kits_share_the_run_sheet_and_running_late_moves_the_other_kits_now_next(tmp_path, start_lead):
    for name in ("hub-broker", "b-broker"):
        (tmp_path / name).mkdir()
    hub = Mosquitto(workdir=tmp_path / "hub-broker").start()
    link = LinkProxy(hub.port)
    broker_b = Mosquitto(workdir=tmp_path / "b-broker", extra_conf=bridge_conf("fair", "merchB", "127.0.0.1", link.port)).start()
    try:
        a = start_lead(kit_config(tmp_path / "a", hub.port, "hubA", "fair"))
        b = start_lead(kit_config(tmp_path / "b", broker_b.port, "merchB", "fair"))
        start = time.time() - 60  # the first slot is running
        a.import_runsheet(runsheet_text(a.config.tz, start, [("Poetry", 20), ("Open mic", 30)], name="Friday"))
        wait_for(lambda: b.runner.evening.sheet is not None, 15, what="kit B holds kit A's run-sheet")
        assert b.runner.evening.sheet.name == "Friday" and b.runner.evening.published_by == "hubA"
        planned = b.runner.evening.slots[1].start

        with b.ctx.db.transaction() as conn:  # Running late on kit B ...
            running_late(conn, b.ctx.ledger, b.config.tz, 5, by="lead")
        wait_for(lambda: abs(a.runner.evening.slots[1].start - (planned + 300)) < 0.01, 15,
                 what="kit A's next slot moved by kit B's Running late")  # ... moves kit A's Now / Next
        view = a.runner.evening.at(time.time())
        assert view.current.slot.name == "Poetry" and view.behind_seconds == 300

        link.cut()  # while the kits cannot see each other, kit A moves on; B catches up when the link heals
        from lead.evening import next_slot

        with a.ctx.db.transaction() as conn:
            next_slot(conn, a.ctx.ledger, a.config.tz, by="lead")
        time.sleep(1.0)
        assert b.runner.evening.at(time.time()).current.slot.name == "Poetry"
        link.heal()
        wait_for(lambda: b.runner.evening.at(time.time()).current.slot.name == "Open mic", 30,
                 what="kit B follows kit A's Next slot after the link heals")
        assert b.ctx.db.scalar("SELECT COUNT(*) FROM events WHERE kit != 'merchB'") == 0  # never in B's own ledger
    finally:
        link.close()
        broker_b.stop()
        hub.stop()
