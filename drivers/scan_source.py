"""The scan source interface every door scan backend implements (camera, serial, HID, simulated).

The backends import only this module; ``drivers.scanner`` is the factory that picks and builds them
from the configuration, so no backend imports the factory back.

- ``source.start(on_code)`` calls ``on_code(payload, source_name)`` from the source's own thread;
  ``source.stop()``; ``source.status()`` is ``"ok"`` or a sentence a lead can act on;
  ``source.preview_jpeg()`` is the latest camera frame as a small JPEG with the code outlined (None
  for scanners); simulated sources also have ``source.show(payload)``.
- A source does not report the same code again until it has been out of sight for
  ``checkin.scan.repeat_window_s``; sources reopen their device after it is unplugged and comes back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from kit.threads import start_vital

log = logging.getLogger("drivers.scanner")  # the name the logs and tests know

OnCode = Callable[[str, str], None]
NOT_STARTED = "not started"


class RepeatFilter:
    """Per-source memory of codes seen lately, so one ticket is reported once, not once per frame."""

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic, max_codes: int = 256):
        self.window_s = window_s
        self.clock = clock
        self.max_codes = max_codes
        self._seen: dict[str, float] = {}

    def accept(self, payload: str) -> bool:
        """True when ``payload`` should be reported; every sighting restarts its quiet window."""
        now = self.clock()
        last = self._seen.pop(payload, None)
        self._seen[payload] = now  # re-inserted last: dict order is oldest sighting first
        if len(self._seen) > self.max_codes:
            del self._seen[next(iter(self._seen))]
        return last is None or now - last >= self.window_s

    def forget(self, payload: str) -> None:
        """A person deliberately shows this code again (the demo panel): report its next sighting."""
        self._seen.pop(payload, None)


class ScanSource:
    """One device that reads codes. Subclasses implement ``_run`` (their own thread) or override start/stop."""

    kind = "scanner"

    def __init__(self, name: str, repeat_window_s: float = 2.0):
        self.name = name
        self.repeats = RepeatFilter(repeat_window_s)
        self._on_code: OnCode | None = None
        self._status = NOT_STARTED
        self._status_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- public interface ---------------------------------------------------------------------
    def start(self, on_code: OnCode) -> None:
        if self._thread and self._thread.is_alive():
            raise RuntimeError(f"scan source {self.name} already started")
        self._on_code = on_code
        self._stopping.clear()
        self._thread = start_vital(f"scan-{self.name}", self._run_guarded, self._stopping)

    def stop(self, timeout: float = 3.0) -> None:
        self._stopping.set()
        if self._thread:
            self._thread.join(timeout)
        self._close()
        self._set_status(NOT_STARTED)

    def status(self) -> str:
        with self._status_lock:
            return self._status

    def preview_jpeg(self) -> bytes | None:
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} status={self.status()!r}>"

    # -- for backends -------------------------------------------------------------------------
    def _run(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        """Release the device (called after the thread ended)."""

    def _set_status(self, status: str) -> None:
        with self._status_lock:
            changed, self._status = status != self._status, status
        if changed and status != NOT_STARTED:
            log.info("event=scan_source_status source=%s status=%r", self.name, status)

    def _emit(self, payload: str) -> bool:
        """Report a code unless it is a repeat; the callback's own errors never stop the source."""
        if not payload or not self.repeats.accept(payload):
            return False
        if self._on_code is None:
            return False
        try:
            self._on_code(payload, self.name)
        except Exception:
            log.exception("event=scan_callback_failed source=%s", self.name)
        return True

    def _wait(self, seconds: float) -> bool:
        """Sleep unless stopping; False when the source is stopping."""
        return not self._stopping.wait(seconds)

    def _run_guarded(self) -> None:
        """Run the backend; kit/threads.py logs a crash, marks check-in degraded and restarts it with backoff."""
        try:
            self._run()
        except Exception as e:  # a bug in a backend must not take the door down silently
            self._set_status(f"{self.name} failed after an internal error ({e.__class__.__name__}); restarting it")
            raise
