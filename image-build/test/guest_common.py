"""What the image test's guest-side scripts share: the report line, "not run", waits and commands.

Installed beside guest-scenario.py in the guest (run.sh), imported by it and by guest_wifi.py.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

WORK = Path("/run/fieldkit-scenario")
# Each wait's bound, for a quiet machine, times this: a TCG guest on a busy 2-core host runs many times
# slower. The bounds only decide how long a failure takes to be reported; the time each step took is.
TIMEOUT_SCALE = 4


def out(line: str) -> None:
    print(line.replace("\n", " "), flush=True)


class NotRun(Exception):
    """This step cannot run here (the reason is the message)."""


def not_run(why: str) -> str:
    raise NotRun(why)


def wait_for(what: str, predicate, timeout: float, interval: float = 0.2):
    """Poll ``predicate`` until it returns something truthy; AssertionError naming ``what`` otherwise."""
    timeout *= TIMEOUT_SCALE
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            got = predicate()
        except OSError as e:
            got, last = None, e
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no {what} within {timeout:.0f}s" + (f" (last error: {last})" if last else "")
            )
        time.sleep(interval)


def sh(*cmd: str, timeout: float = 60, check: bool = True) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {r.returncode}: {(r.stderr or r.stdout).strip()[-300:]}"
        )
    return r.stdout
