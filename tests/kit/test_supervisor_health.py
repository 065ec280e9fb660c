"""Start ids: a retained health message of another run or another kit never overrides our running process."""

from __future__ import annotations

import subprocess
import sys

from kit.startid import boot_id, is_running, start_id
from kit.status import HealthBook


def _dead_start_id() -> str:
    """The start id of a process that ran on this machine and has ended (an earlier run)."""
    proc = subprocess.Popen([sys.executable, "-c", "from kit.startid import start_id; print(start_id())"],
                            stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=30)
    return out.strip()


def test_start_ids_name_running_processes_only():
    me = start_id()
    assert me.startswith(boot_id() + ":") and is_running(me)
    assert not is_running(_dead_start_id())
    assert not is_running("another-boot:1:1") and not is_running("nonsense") and not is_running(None)


def test_our_running_process_wins_over_other_runs_and_other_kits():
    book = HealthBook("demo", ours=is_running)
    earlier = _dead_start_id()
    # At subscribe time the broker hands over what an earlier run left: shown until ours speaks.
    book.observe("pos", {"state": "offline"})
    book.observe("cues", {"state": "ok", "start_id": earlier})
    assert book.states == {"pos": "offline", "cues": "ok"}
    me = start_id()
    book.observe("pos", {"state": "ok", "start_id": me})
    book.observe("cues", {"state": "ok", "start_id": me})
    # Another kit named demo: a dying process's unsigned will and a live one's ok change nothing of ours.
    assert not book.observe("pos", {"state": "offline"})
    assert not book.observe("cues", {"state": "ok", "start_id": "other-boot:4242:99"})
    assert not book.observe("cues", {"state": "degraded", "start_id": earlier})
    book.settle()
    assert book.states == {"pos": "ok", "cues": "ok"}
    assert book.reasons() == ["another kit named demo is on this broker: its messages and ours mix; "
                              "give one of them another kit id or broker"]


def test_an_unsigned_offline_counts_once_our_process_is_gone():
    book = HealthBook("demo", ours=is_running)
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from kit.startid import start_id;"
                             "print(start_id(), flush=True); sys.stdin.read()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    sid = proc.stdout.readline().strip()
    book.observe("pos", {"state": "ok", "start_id": sid})
    book.observe("pos", {"state": "offline"})  # its clean stop says goodbye while it still runs
    book.settle()
    assert book.states["pos"] == "ok"
    proc.stdin.close()
    proc.wait(10)
    book.settle()
    assert book.states["pos"] == "offline" and book.reasons() == []


def test_a_flood_of_foreign_start_ids_is_remembered_within_a_bound():
    from kit.status import FOREIGN_MAX

    book = HealthBook("demo", ours=is_running)
    book.observe("pos", {"state": "ok", "start_id": start_id()})
    for n in range(5000):
        assert not book.observe("pos", {"state": "ok", "start_id": f"other-boot:{n}:1"})
    assert len(book.foreign) == FOREIGN_MAX
    assert book.states == {"pos": "ok"} and len(book.reasons()) == 1
