"""The power state model (freshness, time left) and the two-resolution history in a real SQLite file."""

from __future__ import annotations

from power.history import FINE, HistoryRecorder, query
from power.state import PowerState, time_left_hours

CHARGER = {"battery_v": 12.9, "solar_v": 19.0, "solar_w": 41, "yield_today_kwh": 0.12, "charge_state": "bulk",
           "error": "", "error_code": 0, "load_on": True, "load_a": 0.0}
MONITOR = {"battery_v": 12.9, "battery_a": 2.4, "battery_w": 31, "soc_percent": 86.0, "ttg_minutes": None}


def test_state_merges_charger_and_monitor_and_estimates_time_left_at_this_load():
    state = PowerState(stale_seconds=10, capacity_wh=1280, floor_percent=10)
    state.update("charger", CHARGER, at=100.0)
    state.update("monitor", MONITOR, at=100.0)
    snap = state.snapshot(now=101.0)
    assert snap["battery"]["soc"] == 86.0 and snap["battery"]["source"] == "monitor"
    assert snap["solar"]["power"] == 41 and snap["solar"]["charge_state"] == "bulk"
    assert snap["load"]["consumption_w"] == 10.0  # 41 W from the sun, 31 W into the battery
    # (86 - 10) % of 1280 Wh at 10 W
    assert snap["estimate"]["hours_left"] == round(0.76 * 1280 / 10, 1)
    assert time_left_hours(50, 10, 1000, 0.1) is None  # not discharging: no estimate


def test_a_stale_source_is_unavailable_and_its_values_are_gone():
    state = PowerState(stale_seconds=10)
    state.update("charger", CHARGER, at=100.0)
    state.update("monitor", MONITOR, at=105.0)
    snap = state.snapshot(now=112.0)
    assert snap["solar"]["available"] is False and snap["solar"]["power"] is None
    assert snap["battery"]["available"] is True and snap["battery"]["voltage"] == 12.9
    snap = state.snapshot(now=116.0)
    assert snap["available"] is False
    assert all(snap["battery"][k] is None for k in ("voltage", "current", "power", "soc"))
    assert snap["estimate"]["hours_left"] is None and snap["load"]["consumption_w"] is None


def test_charger_only_gives_voltage_but_no_soc():
    state = PowerState()
    state.update("charger", CHARGER, at=1.0)
    snap = state.snapshot(now=2.0)
    assert snap["battery"]["voltage"] == 12.9 and snap["battery"]["soc"] is None
    assert snap["battery"]["source"] == "charger"


def test_history_keeps_two_resolutions_and_leaves_gaps_for_unavailable_data(db):
    state = PowerState(stale_seconds=5)
    rec = HistoryRecorder(db, fine_seconds=10, coarse_seconds=300, fine_keep_seconds=3600, coarse_keep_seconds=86400)
    t0 = 1_700_000_100.0
    for i in range(0, 1200):  # 20 minutes at 1 reading/s, the source silent between minute 10 and 12
        t = t0 + i
        if not (600 <= i < 720):
            state.update("monitor", {**MONITOR, "soc_percent": 80 - i / 100}, at=t)
        rec.add(state.snapshot(now=t, wall=t), t)
    rec.flush()
    fine = db.query(f"SELECT t, soc FROM {FINE} ORDER BY t")
    assert 100 <= len(fine) <= 120  # ~11 buckets of the 120 silent seconds are missing (5 s grace)
    gaps = [b["t"] - a["t"] for a, b in zip(fine, fine[1:], strict=False)]
    assert max(gaps) >= 100
    assert abs(fine[0]["soc"] - 79.96) < 0.1
    coarse = query(db, since=t0 - 7200, now=t0 + 1200, fine_keep_seconds=600)
    assert coarse["resolution"] == "coarse" and 4 <= len(coarse["samples"]) <= 5
    recent = query(db, since=t0 + 900, now=t0 + 1200, fine_keep_seconds=3600)
    assert recent["resolution"] == "fine" and 25 <= len(recent["samples"]) <= 31
    assert recent["samples"][-1]["soc"] < recent["samples"][0]["soc"]


def test_old_history_is_pruned(db):
    rec = HistoryRecorder(db, fine_seconds=10, coarse_seconds=300, fine_keep_seconds=60, coarse_keep_seconds=600)
    state = PowerState()
    for i in range(0, 2000, 5):
        state.update("monitor", MONITOR, at=float(i))
        rec.add(state.snapshot(now=float(i), wall=1e9 + i), 1e9 + i)
    rec.flush()
    assert db.scalar(f"SELECT MIN(t) FROM {FINE}") >= 1e9 + 2000 - 80
    assert db.scalar("SELECT MIN(t) FROM power_history_coarse") >= 1e9 + 2000 - 900


def test_demo_history_fills_a_week_with_days_and_nights(config, db):
    from power.demo import demo_setup
    from power.history import query

    now = 1_750_000_000.0
    assert demo_setup(config, db, days=3, now=now) > 8000
    week = query(db, since=now - 3 * 86400, now=now)
    assert week["resolution"] == "coarse"
    solar = [s["solar_w"] for s in week["samples"]]
    assert max(solar) > 30 and min(solar) == 0  # sunny days and dark nights
    assert all(0 <= s["soc"] <= 100 for s in week["samples"])
    day = query(db, since=now - 3600, now=now)
    assert day["resolution"] == "fine" and len(day["samples"]) >= 300


def test_an_ina219_source_feeds_the_state_with_voltage_current_and_rough_soc(config):
    import queue
    import threading

    from power.sources import INA219Source

    out: queue.Queue = queue.Queue()
    source = INA219Source(config.with_values(power__ina219_address="0x42"), out, interval=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=source.run, args=(stop,), daemon=True)
    thread.start()
    kind, fields, at, port = out.get(timeout=5)
    stop.set()
    thread.join(2)
    state = PowerState()
    state.update(kind, fields, at, port)
    snap = state.snapshot(now=at)
    assert kind == "monitor" and port == "i2c-1@0x42" and source.problem() == ""
    assert snap["battery"]["voltage"] == 7.6 and snap["battery"]["current"] == -0.4
    assert snap["battery"]["soc"] == 66.7 and snap["estimate"]["hours_left"] is not None


def test_an_ina219_on_a_missing_bus_is_a_problem_the_service_reports(config):
    import queue
    import threading

    from kit.testing import wait_for
    from power.sources import INA219Source

    source = INA219Source(config.with_values(kit__simulate=False, power__i2c_bus=97), queue.Queue(), interval=0.05)
    stop = threading.Event()
    threading.Thread(target=source.run, args=(stop,), daemon=True).start()
    try:
        wait_for(lambda: "/dev/i2c-97" in source.problem(), 5, what="the missing bus to be reported")
    finally:
        stop.set()


def test_an_ina219_that_stops_answering_gives_its_bus_back_and_is_a_problem(config):
    import queue
    import threading

    from kit.testing import wait_for
    from power.sources import INA219Source

    out: queue.Queue = queue.Queue()
    source = INA219Source(config.with_values(power__ina219_address="0x42"), out, interval=0.05)
    stop = threading.Event()
    threading.Thread(target=source.run, args=(stop,), daemon=True).start()
    try:
        out.get(timeout=5)
        bus = source.chip.bus
        bus.unplug()
        wait_for(lambda: source.problem() != "", 5, what="the silent chip reported")
        assert bus.closed  # its descriptor given back, not leaked once a second while it stays silent
    finally:
        stop.set()
