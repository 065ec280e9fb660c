"""The kit clock keeps the lead's correction in memory and still sees another process's change within ~1 s."""

import json
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime

import pytest

from kit.clock import RECHECK_SECONDS, KitClock
from kit.ledger import Ledger

SETTER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from kit.clock import KitClock
    KitClock(Path(sys.argv[1]), method="offset").set_time(time.time() + float(sys.argv[2]), who="other")
""")


def set_from_another_process(data_dir, offset: float, env=None) -> None:
    subprocess.run([sys.executable, "-c", SETTER, str(data_dir), str(offset)], check=True, timeout=30, env=env)


def test_a_correction_written_by_another_process_is_used_within_a_second(tmp_path):
    clock = KitClock(tmp_path)
    assert abs(clock.time() - time.time()) < 1
    set_from_another_process(tmp_path, 3600)
    deadline = time.monotonic() + RECHECK_SECONDS + 0.5
    while clock.time() - time.time() < 3500:
        assert time.monotonic() < deadline, "the other process's correction was not seen within a second"
        time.sleep(0.05)
    assert clock.status().synced and "set by a lead" in clock.status().reason
    set_from_another_process(tmp_path, -1800)  # a second change, same file, seen just as soon
    deadline = time.monotonic() + RECHECK_SECONDS + 0.5
    while clock.time() - time.time() > -1700:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_correction_set_in_this_process_is_used_at_once_by_every_clock(tmp_path):
    reader, setter = KitClock(tmp_path), KitClock(tmp_path, method="offset")
    reader.time()  # the reader has read (and keeps) "no correction"
    setter.set_time(time.time() + 7200, who="test")
    assert 7199 < reader.time() - time.time() < 7201
    assert reader.is_synced()


def test_ledger_events_carry_the_new_correction_within_a_second(tmp_path, db, config):
    clock = KitClock(tmp_path)
    ledger = Ledger(config.kit_id, clock)
    with db.transaction() as conn:
        before = ledger.append(conn, "test.clock", {"i": 0})
    set_from_another_process(tmp_path, 86400)
    time.sleep(RECHECK_SECONDS + 0.1)
    with db.transaction() as conn:
        after = ledger.append(conn, "test.clock", {"i": 1})
    assert after.hlc > before.hlc
    assert (after.hlc >> 16) / 1000 - time.time() > 86000  # HLC and wall time both from the corrected clock
    assert after.wall_time[:10] != before.wall_time[:10] and after.clock_synced
    # and when the correction goes back again, the HLC does not
    set_from_another_process(tmp_path, 0)
    time.sleep(RECHECK_SECONDS + 0.1)
    with db.transaction() as conn:
        back = ledger.append(conn, "test.clock", {"i": 2})
    assert back.hlc > after.hlc and back.wall_time[:10] == before.wall_time[:10]


def test_an_unreadable_correction_file_reads_as_no_correction(tmp_path):
    (tmp_path / "clock.json").write_text(json.dumps(["not", "an", "object"]))
    clock = KitClock(tmp_path)
    assert abs(clock.time() - time.time()) < 1 and clock.status().offset_seconds == 0


TIMEDATECTL_WITH_NTP = """#!/bin/sh
# A timedated that behaves as Raspberry Pi OS's (systemd-timesyncd on): set-time refused while NTP is on.
state={state}
echo "$@" >> {calls}
case "$1" in
  set-ntp) [ "$2" = true ] && echo on > "$state" || echo off > "$state" ;;
  set-time)
    if [ "$(cat "$state")" = on ]; then
      echo "Failed to set time: Automatic time synchronization is enabled" >&2; exit 1
    fi ;;
esac
"""


def test_setting_the_clock_with_ntp_on_turns_it_off_for_the_moment_and_on_again(tmp_path, command_spy):
    command_spy("timedatectl")  # puts the stand-ins' folder first on PATH; replaced below
    stand_in = tmp_path / "spy-bin" / "timedatectl"
    calls, state = tmp_path / "calls", tmp_path / "ntp"
    state.write_text("on\n")
    stand_in.write_text(TIMEDATECTL_WITH_NTP.format(state=state, calls=calls))
    target = time.time() + 3 * 86400
    assert KitClock(tmp_path, method="timedated").set_time(target, who="lead") == "timedated"
    lines = calls.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["set-time", "set-ntp", "set-time", "set-ntp"]
    assert lines[1] == "set-ntp false" and lines[3] == "set-ntp true" and state.read_text() == "on\n"
    set_to = datetime.strptime(lines[2], "set-time %Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC).timestamp()
    assert abs(set_to - target) < 5


def test_a_refusal_other_than_ntp_is_the_lead_s_error_and_ntp_is_left_alone(tmp_path, command_spy):
    command_spy("timedatectl")
    stand_in = tmp_path / "spy-bin" / "timedatectl"
    stand_in.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path}/calls\necho 'Access denied' >&2\nexit 1\n")
    with pytest.raises(subprocess.CalledProcessError) as refused:
        KitClock(tmp_path, method="timedated").set_time(time.time(), who="lead")
    assert "Access denied" in refused.value.stderr
    assert [line.split()[0] for line in (tmp_path / "calls").read_text().splitlines()] == ["set-time"]


def test_a_second_correction_while_timedated_is_still_busy_waits_for_it_and_applies(tmp_path, command_spy):
    """Setting the clock twice in a row (the image test's clock step): timedated is still turning NTP back on
    after the first and refuses the next request for a moment; the kit asks again instead of failing."""
    command_spy("timedatectl")
    stand_in = tmp_path / "spy-bin" / "timedatectl"
    busy = tmp_path / "busy"
    busy.write_text("2\n")
    stand_in.write_text(f"""#!/bin/sh
echo "$@" >> {tmp_path}/calls
n=$(cat {busy})
if [ "$1" = set-time ] && [ "$n" -gt 0 ]; then
  echo $((n - 1)) > {busy}; echo "Failed to set time: Previous request is not finished, refusing." >&2; exit 1
fi
exit 0
""")
    assert KitClock(tmp_path, method="timedated").set_time(time.time(), who="lead") == "timedated"
    assert [line.split()[0] for line in (tmp_path / "calls").read_text().splitlines()] == ["set-time"] * 3
