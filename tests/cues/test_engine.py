"""The demo cue sheet on a virtual clock: the DMX frames a widget receives, step by step."""

from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

BERLIN = ZoneInfo("Europe/Berlin")


def frame(**levels) -> bytes:
    """A 24-channel demo frame: house, stage_dim, stage_red, stage_green, stage_blue, door."""
    order = ["house", "stage_dim", "stage_red", "stage_green", "stage_blue", "door"]
    return bytes([levels.get(n, 0) for n in order] + [0] * 18)


def at(frames, t: float) -> bytes:
    return [f for when, f in frames if abs(when - t) < 1e-6][-1]


def test_go_waits_its_pre_wait_fades_over_two_seconds_then_auto_follows(make_show, demo_sheet):
    show = make_show(demo_sheet)
    assert show.engine.standing_by.name == "preshow"
    show.engine.go()
    frames = show.run(5.0, step=0.25)
    times = [t for t, _ in frames]
    # Nothing moves during the 1 s pre-wait: the first frame after the blackout one comes at 1.25 s.
    assert times[0] == 0.0 and frames[0][1] == frame()
    assert times[1] == 1.25
    assert at(frames, 1.25) == frame(house=25, stage_dim=10, stage_blue=32)
    assert at(frames, 2.0) == frame(house=100, stage_dim=40, stage_blue=128)  # halfway through the 2 s fade
    assert at(frames, 3.0) == frame(house=200, stage_dim=80, stage_blue=255)  # fade complete
    # Auto-follow: "walkin" starts as "preshow" ends, a 1 s fade towards its scene.
    assert at(frames, 3.5) == frame(house=180, stage_dim=110, stage_red=128, stage_green=60, stage_blue=255)
    assert at(frames, 4.0) == frame(house=160, stage_dim=140, stage_red=255, stage_green=120, stage_blue=255)
    assert all(t <= 4.0 for t in times), "nothing changes once the walk-in scene is reached"
    assert [p["cue"] for k, p in show.events if k == "fired"] == ["preshow", "walkin"]
    assert [p["reason"] for k, p in show.events if k == "fired"] == ["go", "auto-follow"]
    assert show.engine.standing_by.name == "show"


def test_stop_all_in_the_middle_of_a_fade_freezes_the_levels(make_show, demo_sheet):
    show = make_show(demo_sheet)
    show.engine.go()
    show.run(2.0, step=0.25)
    assert show.levels("house", "stage_blue") == (100, 128)
    show.engine.stop_all("test")
    after = show.run(5.0, step=0.25)
    assert after == [], "no frame changes after STOP ALL: the fade stopped where it was"
    assert show.levels("house", "stage_dim", "stage_blue") == (100, 40, 128)
    assert [p["cue"] for k, p in show.events if k == "fired"] == ["preshow"], "auto-follow was cancelled"
    assert ("stop_all", {"reason": "test"}) in show.events
    # The playhead stays: GO now runs "walkin".
    show.engine.go()
    show.run(1.0)
    assert show.levels("house", "stage_red") == (160, 255)


def test_battery_low_dims_power_hungry_cues_and_recovers(make_show, demo_sheet):
    show = make_show(demo_sheet)
    show.engine.fire("show")
    show.engine.fire("welcome")  # the door light is not power-hungry
    show.run(3.5)
    assert show.levels("house", "stage_dim", "door") == (30, 255, 0)
    show.engine.sale({})  # unrelated bus traffic changes nothing
    show.engine.fire("welcome")
    show.run(0.1)
    assert show.level("door") == 255
    show.engine.battery_event("warning", 19.0)
    new = show.capture()
    assert new[-1][1] == frame(house=12, stage_dim=102, stage_red=102, stage_green=72, stage_blue=36, door=255)
    assert [p["cue"] for k, p in show.events if k == "fired"][-1] == "battery-low"
    # A power-hungry cue fired now is dimmed too; the motion cue's battery condition refuses it.
    assert show.engine.sensor_event("stage_pir", True) == []
    assert any(k == "skipped" and "battery 19 %" in p["why"] for k, p in show.events)
    show.engine.battery_event("ok", 60.0)
    show.run(0.1)
    assert show.levels("house", "stage_dim", "stage_red") == (30, 255, 255)


def test_skip_policy_refuses_power_hungry_cues_while_low(make_show, demo_sheet):
    show = make_show(demo_sheet, power_policy="skip")
    show.engine.battery_event("critical")
    assert show.engine.sensor_event("stage_pir", True) == []
    assert show.engine.admission({"colour": "green", "admitted_total": 100}) == ["welcome"]
    show.engine.battery_event("ok")
    show.run(30)  # past the motion cue's cooldown
    assert show.engine.sensor_event("stage_pir", False) == []
    assert show.engine.sensor_event("stage_pir", True) == ["stage-motion"]


def test_closing_time_fires_at_2230_local_and_fades_out(make_show, demo_sheet):
    show = make_show(demo_sheet, wall=datetime(2026, 6, 20, 22, 29, 50, tzinfo=BERLIN))
    show.engine.fire("show")
    show.run(5.0)
    assert show.level("house") == 30 and not any(p["cue"] == "closing" for k, p in show.events if k == "fired")
    frames = show.run(6.0, step=0.5)  # 22:29:55 -> 22:30:01
    fired = [p for k, p in show.events if k == "fired" and p["cue"] == "closing"]
    assert fired and fired[0]["reason"] == "time"
    assert frames[0][0] == 10.5, "the first frame of the 10 s fade-out comes half a second after 22:30:00"
    assert frames[0][1] == frame(house=29, stage_dim=242, stage_red=242, stage_green=171, stage_blue=86)
    show.run(10.0, step=0.5)
    assert show.widget.levels == frame()
    show.run(86400 - 30.0, step=10.0)  # from 22:30:11 to 22:29:41 the next day
    assert len([p for k, p in show.events if k == "fired" and p["cue"] == "closing"]) == 1, "once a day"
    show.run(30.0, step=1.0)
    assert len([p for k, p in show.events if k == "fired" and p["cue"] == "closing"]) == 2


def test_every_n_minutes_fires_on_the_quarter_hours(make_show, demo_sheet):
    show = make_show(demo_sheet, wall=datetime(2026, 6, 20, 20, 14, 0, tzinfo=BERLIN))
    show.run(60 * 31, step=30.0)
    beats = [p for t, p in show.published if t == "cues/event/heartbeat"]
    assert len(beats) == 3  # 20:15, 20:30, 20:45 is not reached
    assert beats[0] == {"ok": True, "cue": "heartbeat"}


def test_every_hundredth_admission_plays_the_sting_and_rehearsals_do_not_count(make_show, demo_sheet, caplog):
    show = make_show(demo_sheet)
    for n in range(1, 100):
        show.engine.admission({"colour": "green", "rehearsal": n % 2 == 0, "admitted_total": None})
    assert show.engine.admission({"colour": "red"}) == []
    fired = []
    with caplog.at_level(logging.WARNING, logger="fieldkit.cues"):
        for _ in range(60):
            fired += show.engine.admission({"colour": "amber"})
    assert fired.count("sting-100") == 1
    # sting.wav is missing here: logged, and the chase and the message still run.
    assert "event=sound_missing cue=sting-100" in caplog.text
    assert ("cues/event/milestone", {"what": "100 admissions", "cue": "sting-100"}) in show.published
    frames = show.run(2.5, step=0.25)
    chase = [f[1:5] for _, f in frames if f[1] == 255]
    assert bytes([255, 255, 0, 0]) in chase and bytes([255, 0, 0, 255]) in chase  # red and blue steps


def test_debounce_and_cooldown(make_show, demo_sheet):
    show = make_show(demo_sheet)
    assert show.engine.sensor_event("door_beam", True) == ["door-beam"]
    show.run(0.1)
    assert show.engine.sensor_event("door_beam", True) == [], "a bounce 0.1 s later is ignored"
    show.run(1.0)
    assert show.engine.sensor_event("door_beam", True) == [], "still in its 2 s cooldown"
    assert any(k == "skipped" and "cooling down" in p["why"] for k, p in show.events)
    show.run(1.0)
    assert show.engine.sensor_event("door_beam", True) == ["door-beam"]


def test_time_of_day_condition(make_show, demo_sheet):
    early = make_show(demo_sheet, wall=datetime(2026, 6, 20, 11, 0, tzinfo=BERLIN))
    assert early.engine.sensor_event("daylight", True) == []
    late = make_show(demo_sheet, wall=datetime(2026, 6, 20, 21, 0, tzinfo=BERLIN))
    assert late.engine.sensor_event("daylight", True) == ["dusk"]


def test_back_next_and_end_of_list(make_show, demo_sheet):
    show = make_show(demo_sheet)
    assert show.engine.move_playhead(2).name == "show"
    assert show.engine.move_playhead(-1).name == "walkin"
    show.engine.set_playhead("closing")
    assert show.engine.go().name == "closing"
    assert show.engine.go() is None
    assert show.engine.standing_by is None


def test_a_new_sheet_replaces_the_old_while_levels_hold(make_show, demo_sheet):
    from cues.sheet import parse_sheet

    show = make_show(demo_sheet)
    show.engine.go()
    show.run(2.0)
    text = demo_sheet.text.replace('name = "Micro-stage demo"', 'name = "Second show"')
    show.engine.load(parse_sheet(text))
    show.run(3.0)
    assert show.engine.snapshot()["sheet"] == "Second show"
    assert show.levels("house", "stage_red") == (160, 255), "the running cue finished and auto-followed"


def test_setting_the_clock_forward_does_not_fire_the_schedules_it_jumps_over(make_show, demo_sheet):
    show = make_show(demo_sheet, wall=datetime(2026, 6, 20, 9, 0, tzinfo=BERLIN))
    show.run(1.0)
    show.clock.advance(14 * 3600)  # a lead sets the clock: it is really 23:00
    show.run(1.0)
    assert not [p for k, p in show.events if k == "fired"]
    show.run(15 * 60, step=10.0)
    assert [p["cue"] for k, p in show.events if k == "fired"] == ["heartbeat"]  # 23:15 passes normally


def test_stop_all_scene_is_set_when_the_sheet_names_one(make_show, demo_sheet):
    from cues.sheet import parse_sheet

    text = demo_sheet.text.replace('name = "Micro-stage demo"', 'name = "Safe"\nstop_all_scene = "walkin"')
    show = make_show(parse_sheet(text))
    show.engine.fire("show")
    show.run(1.0)
    show.engine.stop_all()
    show.run(0.1)
    assert show.levels("house", "stage_dim", "stage_red") == (160, 140, 255)
