"""The kit clock keeps the lead's correction in memory and still sees another process's change within ~1 s."""

import json
import subprocess
import sys
import textwrap
import time

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
