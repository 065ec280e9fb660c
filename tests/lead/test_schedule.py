"""Next slot and Running late: how they move the evening, and that every kit folds them the same way."""

from __future__ import annotations

import itertools
from zoneinfo import ZoneInfo

from lead.runsheet import parse_runsheet
from lead.schedule import Adjustment, effective_slots, moments, now_next
from tests.lead.conftest import runsheet_text

TZ = ZoneInfo("UTC")
T0 = 1_800_000_000.0  # the first slot's planned start
SHEET = parse_runsheet(runsheet_text(TZ, T0, [("A", 20), ("B", 15), ("C", 30)]), TZ)


def times(adjustments):
    return [(t.start - T0, t.end - T0) for t in effective_slots(SHEET, adjustments)]


def test_planned_times_without_adjustments():
    assert times([]) == [(0, 1200), (1200, 2100), (2100, 3900)]
    view = now_next(effective_slots(SHEET, []), T0 + 1190)
    assert view.current.slot.name == "A" and view.next.slot.name == "B" and view.behind_seconds == 0


def test_running_late_gives_the_running_slot_more_time_and_moves_every_later_one():
    late = Adjustment("late", 0, 300, hlc=1, origin="kitA")
    assert times([late]) == [(0, 1500), (1500, 2400), (2400, 4200)]
    view = now_next(effective_slots(SHEET, [late]), T0 + 1300)
    assert view.current.slot.name == "A" and view.behind_seconds == 300
    before_b = Adjustment("late", 1, 120, hlc=2, origin="kitA", extend=False)  # between slots: B starts later
    assert times([before_b]) == [(0, 1200), (1320, 2220), (2220, 4020)]


def test_next_slot_starts_the_next_one_now_and_cuts_the_running_one():
    nxt = Adjustment("next", 1, T0 + 600, hlc=1, origin="kitA")
    assert times([nxt]) == [(0, 600), (600, 1500), (1500, 3300)]
    view = now_next(effective_slots(SHEET, [nxt]), T0 + 601)
    assert view.current.slot.name == "B" and view.behind_seconds == -600
    end = Adjustment("next", 3, T0 + 2500, hlc=2, origin="kitA")  # Next during the last slot ends the programme
    assert times([nxt, end])[-1] == (1500, 2500)
    assert now_next(effective_slots(SHEET, [nxt, end]), T0 + 2501).finished


def test_every_order_of_arrival_gives_the_same_evening():
    events = [Adjustment("late", 0, 300, 5, "kitB"), Adjustment("next", 1, T0 + 900, 7, "kitA"),
              Adjustment("late", 1, 120, 7, "kitB"), Adjustment("next", 2, T0 + 1800, 9, "kitA")]
    results = {tuple(times(list(order))) for order in itertools.permutations(events)}
    assert len(results) == 1


def test_moments_come_in_order_with_a_slots_end_before_the_next_start():
    order = [(at - T0, when, t.slot.name) for at, when, t in moments(effective_slots(SHEET, []), 60)]
    assert order[:5] == [(0, "start", "A"), (1140, "ending", "A"), (1200, "end", "A"), (1200, "start", "B"),
                         (2040, "ending", "B")]
