"""Reading a run-sheet: slots in kit time, after midnight, and every mistake named by its line."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from lead.runsheet import RunSheetError, parse_runsheet

TZ = ZoneInfo("Europe/Berlin")
GOOD = """name = "Courtyard, Friday"
date = "2026-12-04"

[[slot]]
name = "Poetry bench"
start = "23:30"
minutes = 20
stage = "Bench"
host = "Ana"
note = "Mic check at 23:25"

[[slot]]
name = "Open mic"
start = "23:50"
minutes = 30

[[slot]]
name = "Closing set"
start = "00:30"
minutes = 45
"""


def local(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=TZ).timestamp()


def test_slots_are_read_in_the_kits_time_zone_and_run_past_midnight():
    sheet = parse_runsheet(GOOD, TZ)
    assert sheet.name == "Courtyard, Friday" and sheet.evening == "2026-12-04"
    assert [s.name for s in sheet.slots] == ["Poetry bench", "Open mic", "Closing set"]
    assert sheet.slots[0].start == local("2026-12-04T23:30") and sheet.slots[0].end == local("2026-12-04T23:50")
    assert sheet.slots[2].start == local("2026-12-05T00:30")  # after midnight: the next day
    assert (sheet.slots[0].stage, sheet.slots[0].host, sheet.slots[0].note) == ("Bench", "Ana", "Mic check at 23:25")
    assert parse_runsheet(GOOD, TZ).digest == sheet.digest and len(sheet.digest) == 64


@pytest.mark.parametrize("change,line,words", [
    (('start = "23:50"', 'start = "23:40"'), 14, "before 'Poetry bench' ends at 23:50: slots may not overlap"),
    (("minutes = 45", "minutes = 1200"), 20, "longer than the night"),
    (('start = "00:30"', 'start = "20:30"'), 19, "a night is at most 18 h"),
    (("minutes = 30", "minutes = -5"), 15, "minutes must be a number above 0"),
    (('start = "23:50"', 'start = "half past"'), 14, "start must be a time like 19:30"),
    (('host = "Ana"', 'hots = "Ana"'), 9, "unknown key 'hots'"),
    (('name = "Open mic"', 'name = "Poetry bench"'), 13, "two slots called 'Poetry bench'"),
    (('date = "2026-12-04"', 'date = "Friday"'), 2, "not a date"),
    (('minutes = 30\n', 'minutes = 30\nminutes = 31\n'), 16, "not valid TOML"),
])
def test_a_broken_run_sheet_names_the_line_and_the_reason(change, line, words):
    with pytest.raises(RunSheetError) as e:
        parse_runsheet(GOOD.replace(*change), TZ, "friday.toml")
    assert e.value.line == line and words in str(e.value), str(e.value)
    assert str(e.value).startswith(f"friday.toml line {line}: ")


def test_no_slots_and_oversized_sheets_are_refused_plainly():
    with pytest.raises(RunSheetError, match="no \\[\\[slot\\]\\] tables"):
        parse_runsheet('name = "x"\ndate = "2026-12-04"\n', TZ)
    with pytest.raises(RunSheetError, match="at most 32768 bytes"):
        parse_runsheet(GOOD + "#" * 40_000, TZ)
    with pytest.raises(RunSheetError, match="not UTF-8"):
        parse_runsheet(b"name = \xff\xfe", TZ)
