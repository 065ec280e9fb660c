"""Low-power decisions across noisy readings, spikes, slow decline and recovery."""

from __future__ import annotations

import random

from power.lowpower import CRITICAL, OK, WARNING, LowPowerMonitor, LowPowerSettings

S = LowPowerSettings(warning_soc=25, warning_hysteresis=5, critical_volts=11.6, critical_hysteresis=0.3,
                     hold_seconds=20)


def feed(monitor, readings, start=0.0, step=1.0):
    out = []
    for i, (soc, volts) in enumerate(readings):
        t = monitor.observe(start + i * step, soc, volts)
        if t:
            out.append((start + i * step, t))
    return out


def test_one_bad_reading_never_warns_or_shuts_down():
    m = LowPowerMonitor(S)
    readings = [(80.0, 13.1)] * 30
    readings[10] = (3.0, 9.0)  # one garbage reading: SOC 3 %, 9 V
    assert feed(m, readings) == [] and m.level == OK


def test_slow_discharge_warns_once_then_shuts_down_after_the_hold():
    m = LowPowerMonitor(S)
    rng = random.Random(7)
    readings = []
    for i in range(400):
        soc = max(0.0, 40 - i * 0.1)
        volts = 12.9 - max(0, i - 300) * 0.02 + rng.uniform(-0.05, 0.05)
        readings.append((soc + rng.uniform(-0.5, 0.5), volts))
    transitions = feed(m, readings)
    levels = [t.level for _, t in transitions]
    assert levels == [WARNING, CRITICAL]
    warn_at, crit_at = transitions[0][0], transitions[1][0]
    assert 140 <= warn_at <= 160  # SOC crosses 25 % around reading 150
    first_below = next(i for i, (_, v) in enumerate(readings) if v <= 11.6)
    assert crit_at >= first_below + 20
    assert transitions[1][1].voltage is not None and transitions[1][1].voltage < 11.7


def test_noise_around_the_floor_with_a_mostly_healthy_battery_does_not_shut_down():
    m = LowPowerMonitor(S)
    rng = random.Random(1)
    # a loaded battery sagging: mostly 11.75 V, with one dip below the floor every few seconds
    readings = [(60.0, 11.5 if rng.random() < 0.25 else 11.75) for _ in range(120)]
    assert all(t.level != CRITICAL for _, t in feed(m, readings))


def test_a_dip_that_recovers_past_the_hysteresis_calls_the_shutdown_off():
    m = LowPowerMonitor(S)
    readings = [(50.0, 11.4)] * 15 + [(50.0, 12.0)] + [(50.0, 11.4)] * 15
    assert feed(m, readings) == []  # neither run of 15 s reaches the 20 s hold
    assert feed(m, [(50.0, 11.4)] * 25, start=100) [0][1].level == CRITICAL


def test_warning_clears_only_above_the_hysteresis_band():
    m = LowPowerMonitor(S)
    down = [(24.0, 12.9)] * 6
    wobble = [(27.0, 12.9)] * 10  # above 25 but below 30: stays a warning
    up = [(31.0, 13.0)] * 6
    transitions = feed(m, down + wobble + up)
    assert [t.level for _, t in transitions] == [WARNING, OK]
    assert transitions[1][0] >= len(down) + len(wobble)


def test_unavailable_readings_never_act():
    m = LowPowerMonitor(S)
    assert feed(m, [(None, None)] * 100) == [] and m.level == OK


def test_without_soc_the_voltage_drives_the_warning():
    m = LowPowerMonitor(S)
    transitions = feed(m, [(None, 13.0)] * 5 + [(None, 12.3)] * 6)
    assert [t.level for _, t in transitions] == [WARNING]
