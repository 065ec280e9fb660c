"""Cue sheets are validated on load, and every error names the line a lead has to fix."""

from __future__ import annotations

import pytest

from cues.documents import DEMO_SHEET
from cues.sheet import SheetError, parse_sheet

GOOD = """\
[sheet]
name = "Tiny"

[dmx.channels]
wash = 1

[scenes]
up = { wash = 255 }

[[cues]]
name = "one"
pre_wait = 0.5
continue = "auto-follow"
[[cues.actions]]
kind = "dmx"
scene = "up"
fade = 2

[[cues]]
name = "two"
[[cues.actions]]
kind = "dmx"
channels = { wash = 0, 7 = 100 }
"""


def error_of(text: str) -> SheetError:
    with pytest.raises(SheetError) as info:
        parse_sheet(text, "show.toml")
    return info.value


def test_the_demo_sheet_and_a_small_one_parse():
    demo = parse_sheet(DEMO_SHEET.read_bytes())
    assert [c.name for c in demo.cue_list] == ["preshow", "walkin", "show", "closing"]
    tiny = parse_sheet(GOOD)
    assert tiny.cues[1].actions[0].channels == ((1, 0), (7, 100))
    assert tiny.cues[0].continue_mode == "auto-follow" and tiny.cues[0].pre_wait == 0.5
    assert tiny.dmx_size == 24


def test_a_toml_syntax_error_names_its_line():
    err = error_of(GOOD.replace('scene = "up"', 'scene = "up'))
    assert err.line == 16
    assert str(err).startswith("show.toml line 16: not valid TOML")


@pytest.mark.parametrize("change, line, words", [
    (('kind = "dmx"\nscene', 'kind = "dmxx"\nscene'), 15, "unknown kind 'dmxx'"),
    (('scene = "up"', 'scene = "down"'), 16, "no scene called 'down'"),
    (('fade = 2', 'fade = "slow"'), 17, "fade must be a number"),
    (('continue = "auto-follow"', 'continue = "follow"'), 13, "expected one of stop, auto-continue, auto-follow"),
    (('wash = 0, 7 = 100', 'wash = 0, 999 = 100'), 23, "'999' is neither a channel"),
    (('name = "two"', 'name = "one"'), 20, "two cues are called 'one'"),
    (('up = { wash = 255 }', 'up = { wash = 300 }'), 8, "level 0..255"),
    (('pre_wait = 0.5', 'pre_wiat = 0.5'), 12, "unknown key 'pre_wiat'"),
])
def test_semantic_errors_name_the_line(change, line, words):
    err = error_of(GOOD.replace(*change))
    assert err.line == line, str(err)
    assert words in str(err)
    assert str(err).startswith(f"show.toml line {line}: ")


def test_triggers_and_sensors_are_checked():
    text = GOOD + '[[cues.triggers]]\nkind = "sensor"\nsensor = "pir"\n'
    err = error_of(text)
    assert err.line == 26 and "no sensor called 'pir'" in str(err)
    err = error_of(GOOD + '[[cues.triggers]]\nkind = "time"\nat = "25:00"\n')
    assert err.line == 26 and "at '25:00' is not valid" in str(err)
    err = error_of(GOOD.replace("[[cues]]\nname = \"two\"", "[[cues]]\nname = \"two\"\n[cues.conditions]\nbattery_above = 150"))
    assert err.line == 22 and "outside 0..100" in str(err)


def test_empty_and_non_utf8_sheets_are_refused():
    assert "no cues" in str(error_of('[sheet]\nname = "x"\n'))
    with pytest.raises(SheetError, match="not UTF-8"):
        parse_sheet(b"\xff\xfe[sheet]")


def test_a_broken_sheet_is_refused_by_the_importer_and_nothing_is_stored(config, db):
    from kit.documents import DocumentError, current_documents, import_document

    record, report = import_document(config, db, "cues.sheet", GOOD.encode(), "tiny.toml")
    assert record.version == 1 and report.imported == 2
    with pytest.raises(DocumentError, match=r"broken.toml line 16: cue 'one' action 1: no scene called 'down'"):
        import_document(config, db, "cues.sheet", GOOD.replace('scene = "up"', 'scene = "down"').encode(), "broken.toml")
    assert [(d["kind"], d["version"]) for d in current_documents(db) if d["kind"] == "cues.sheet"] == [("cues.sheet", 1)]


def test_cues_check_names_the_line_without_importing(tmp_path):
    from click.testing import CliRunner

    from kit.cli import cli

    sheet = tmp_path / "show.toml"
    sheet.write_text(GOOD)
    result = CliRunner().invoke(cli, ["cues", "check", str(sheet)])
    assert result.exit_code == 0 and result.output.strip() == "OK Tiny: 2 cues (2 in the GO list)"
    sheet.write_text(GOOD.replace("fade = 2", "fade = -2"))
    result = CliRunner().invoke(cli, ["cues", "check", str(sheet)])
    assert result.exit_code == 1
    assert "show.toml line 17: cue 'one' action 1: fade = -2 is outside 0..3600" in result.output


def test_slot_triggers_name_a_moment_and_optionally_a_slot():
    sheet = parse_sheet(GOOD + '[[cues.triggers]]\nkind = "slot"\nwhen = "ending"\nslot = "Poetry bench"\n')
    trigger = sheet.cues[-1].triggers[0]
    assert (trigger.kind, trigger.when, trigger.slot) == ("slot", "ending", "Poetry bench")
    error = error_of(GOOD + '[[cues.triggers]]\nkind = "slot"\nwhen = "soon"\n')
    assert error.line == GOOD.count("\n") + 3 and "unknown when 'soon' (expected one of start, ending, end)" in str(error)


def test_a_pickup_trigger_fires_when_a_window_opens():
    from cues.triggers import TriggerState

    sheet = parse_sheet(GOOD + '[[cues.triggers]]\nkind = "pickup"\n')
    assert sheet.cues[-1].triggers[0].when == "opens"
    assert [c.name for c in TriggerState.pickup_cues(sheet, {"when": "opens", "orders": 3})] == ["two"]
    assert "unknown when 'closes'" in str(error_of(GOOD + '[[cues.triggers]]\nkind = "pickup"\nwhen = "closes"\n'))
