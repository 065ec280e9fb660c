"""Wall time the kit can vouch for, a lead's correction, and the hybrid logical clock.

A Pi has no real-time clock: after boot the wall clock can be far off until NTP or a lead sets it.
Every ledger event carries an HLC value (monotonic across processes and backwards clock jumps) and
whether the wall clock was known good when it was written.
"""

from __future__ import annotations

import ctypes
import functools
import json
import logging
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kit.files import write_durably

log = logging.getLogger("fieldkit.clock")

# Anything earlier than this cannot be "now": the kit was built after it.
EARLIEST_PLAUSIBLE = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
_TIME_ERROR = 5  # adjtimex(2): clock not synchronised
HLC_COUNTER_BITS = 16


@functools.cache  # one boot per process: read once, not on every ledger event
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


class _Timex(ctypes.Structure):
    _fields_ = [("modes", ctypes.c_uint)] + [(f"pad{i}", ctypes.c_long) for i in range(40)]


@functools.cache  # once per process, not on every ledger event
def _libc() -> ctypes.CDLL:
    # The process's own symbols, libc's among them: no ctypes.util.find_library (it runs ldconfig and
    # imports ~1 MB of modules in every process)
    return ctypes.CDLL(None, use_errno=True)


def kernel_clock_synchronised() -> bool:
    if Path("/run/systemd/timesync/synchronized").exists():
        return True
    try:
        return _libc().adjtimex(ctypes.byref(_Timex())) != _TIME_ERROR
    except (OSError, AttributeError):
        return False


@dataclass
class ClockStatus:
    now: float
    synced: bool
    plausible: bool
    offset_seconds: float
    reason: str

    def as_dict(self) -> dict:
        return {
            "now": datetime.fromtimestamp(self.now, UTC).isoformat(),
            "synced": self.synced,
            "plausible": self.plausible,
            "offset_seconds": round(self.offset_seconds, 3),
            "reason": self.reason,
        }


# Bumped whenever this process writes a correction, so every KitClock in it re-reads at once.
_local_writes = 0
RECHECK_SECONDS = 1.0  # another process's correction (the web's clock setting) is seen within this


class KitClock:
    """System time plus a lead's correction kept in ``<data_dir>/clock.json``.

    The correction file is shared by every process. It is read once and kept: its mtime is checked at
    most once every ``RECHECK_SECONDS`` (a ledger append must not cost file system calls), and at once
    after this process wrote it. Whether the kernel clock is synchronised is kept for as long.
    """

    def __init__(self, data_dir: Path, assume_synced: bool = False, method: str = "auto"):
        self.path = Path(data_dir) / "clock.json"
        self.assume_synced = assume_synced
        self.method = method
        self._mtime: float | None = None
        self._state: dict = {}
        self._offset = 0.0
        self._checked_at = float("-inf")  # time.monotonic() of the last stat
        self._writes_seen = -1
        self._kernel_synced: bool | None = None

    def _load(self) -> dict:
        checked = time.monotonic()
        if checked - self._checked_at < RECHECK_SECONDS and self._writes_seen == _local_writes:
            return self._state
        self._checked_at, self._writes_seen, self._kernel_synced = checked, _local_writes, None
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            self._state, self._mtime, self._offset = {}, None, 0.0
            return self._state
        if mtime != self._mtime:
            try:
                self._state = json.loads(self.path.read_text())
                self._offset = float(self._state.get("offset_seconds", 0.0))
            except (OSError, ValueError, TypeError, AttributeError):
                log.warning("event=clock_file_unreadable path=%s", self.path)
                self._state, self._offset = {}, 0.0
            self._mtime = mtime
        return self._state

    @property
    def offset(self) -> float:
        self._load()
        return self._offset

    def time(self) -> float:
        self._load()
        return time.time() + self._offset

    @property
    def jumped(self) -> float:
        """How far the kit itself has moved the system clock (timedated), in all, since it was made."""
        value = self._load().get("jumped_seconds", 0.0)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0

    def steady_time(self) -> float:
        """The system time less the kit's own jumps of it: what signed-in sessions age by, so a lead who
        sets the clock three days forward from a phone does not sign every screen out (and back, in)."""
        return time.time() - self.jumped

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def _synced_and_reason(self, state: dict) -> tuple[bool, str]:
        if self.assume_synced:
            return True, "trusted by setting kit.clock_assume_synced"
        if state.get("boot_id") == _boot_id() and "set_at" in state:
            return True, f"set by a lead at {state['set_at']}"
        if self._kernel_synced is None:  # cleared with the file check, at most once a RECHECK_SECONDS
            self._kernel_synced = kernel_clock_synchronised()
        if self._kernel_synced:
            return True, "synchronised by NTP"
        return False, "not synchronised since boot: set it from a phone on the dashboard"

    def status(self) -> ClockStatus:
        now = self.time()
        plausible = now >= EARLIEST_PLAUSIBLE
        synced, reason = self._synced_and_reason(self._load())
        if not plausible:
            synced, reason = False, "the clock reads a date before this software was built"
        return ClockStatus(now, synced and plausible, plausible, self._offset, reason)

    def synced_at(self, now: float) -> bool:
        """Whether a time ``now`` read from this clock can be vouched for (the ledger's clock_synced)."""
        return now >= EARLIEST_PLAUSIBLE and self._synced_and_reason(self._load())[0]

    def is_synced(self) -> bool:
        return self.synced_at(self.time())

    def set_time(self, true_unix: float, who: str = "lead") -> str:
        """Set the kit's time from a trusted source (a lead's phone). Returns how it was applied."""
        method = self.method
        if method == "auto":
            method = "timedated" if Path("/run/systemd/system").exists() and shutil.which("timedatectl") else "offset"
        offset, jumped = 0.0, self.jumped
        if method == "timedated":
            jumped += true_unix - time.time()  # the system clock itself moves by this much
            _timedated_set_time(true_unix)
        else:
            offset = true_unix - time.time()
        state = {
            "offset_seconds": offset,
            "jumped_seconds": jumped,
            "set_at": datetime.fromtimestamp(true_unix, UTC).isoformat(),
            "set_by": who,
            "boot_id": _boot_id(),
            "method": method,
        }
        write_durably(self.path, json.dumps(state))
        global _local_writes
        _local_writes += 1  # this process's clocks re-read now, not a RECHECK_SECONDS later
        log.info("event=clock_set method=%s offset_seconds=%.3f by=%s", method, offset, who)
        return method


def _timedatectl(*args: str, timeout: float = 10) -> subprocess.CompletedProcess:
    return subprocess.run(["timedatectl", *args], capture_output=True, text=True, timeout=timeout)


BUSY = "Previous request is not finished"  # timedated, while it still carries out the last request


def _timedated_set_time(true_unix: float) -> None:
    """Set the system clock through timedated (polkit lets user fieldkit).

    timedated refuses set-time while NTP is on ("Automatic time synchronization is enabled"), and
    Raspberry Pi OS runs systemd-timesyncd: so NTP goes off for the moment, and on again after, so a kit
    that later finds a network takes the network's time over the phone's.
    """
    started = time.time()

    def stamp() -> str:  # the phone's time, moved on by however long this took
        return datetime.fromtimestamp(true_unix + time.time() - started, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    def set_time(*waits: str) -> subprocess.CompletedProcess:
        for _ in range(50):  # refused for one of ``waits`` for a moment only: ask again, up to 10 s
            r = _timedatectl("set-time", stamp())
            if r.returncode == 0 or not any(why in r.stderr for why in waits):
                return r
            time.sleep(0.2)
        return r

    # A second correction right after a first finds timedated still busy turning NTP back on.
    r = set_time(BUSY)
    if r.returncode == 0:
        return
    if "Automatic time synchronization is enabled" not in r.stderr:
        raise subprocess.CalledProcessError(r.returncode, r.args, r.stdout, r.stderr)
    off = _timedatectl("set-ntp", "false", timeout=30)
    if off.returncode != 0:
        raise subprocess.CalledProcessError(off.returncode, off.args, off.stdout, off.stderr)
    try:
        r = set_time("Automatic time synchronization", BUSY)  # timesyncd takes a moment to let go
        if r.returncode != 0:
            raise subprocess.CalledProcessError(r.returncode, r.args, r.stdout, r.stderr)
    finally:
        if _timedatectl("set-ntp", "true", timeout=30).returncode != 0:
            log.warning("event=clock_ntp_not_restored")


def hlc_next(last: int, wall_ms: int) -> int:
    """The next hybrid logical clock value after ``last`` (packed: ms << 16 | counter).

    Never goes backwards, whatever the wall clock does; equal wall times bump the counter.
    """
    last_ms, last_counter = last >> HLC_COUNTER_BITS, last & ((1 << HLC_COUNTER_BITS) - 1)
    if wall_ms > last_ms:
        return wall_ms << HLC_COUNTER_BITS
    if last_counter + 1 >= (1 << HLC_COUNTER_BITS):  # counter full: borrow a millisecond
        return (last_ms + 1) << HLC_COUNTER_BITS
    return (last_ms << HLC_COUNTER_BITS) | (last_counter + 1)


def hlc_merge(local_last: int, remote: int, wall_ms: int) -> int:
    """HLC receive rule: the result is after both our last value and a peer's."""
    return hlc_next(max(local_last, remote), wall_ms)


def hlc_to_text(value: int) -> str:
    ms, counter = value >> HLC_COUNTER_BITS, value & ((1 << HLC_COUNTER_BITS) - 1)
    return f"{datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec='milliseconds')}#{counter}"
