"""Every long-lived thread of a service runs through ``start_vital``: none dies silently.

A loop that raises is logged (``event=thread_failed thread=... reason=...``), the service is marked
degraded with the reason (the runner in kit/service.py reads ``problems()``), and the loop starts again
after a backoff (0.5 s doubling to 30 s). It is healthy again once it has run ``healthy_after`` seconds
without failing. A loop that keeps dying (``max_failures`` within ``window`` seconds) is given up: the
runner ends the process non-zero so systemd or ``fieldkit up`` restarts the whole service.
A loop that returns on its own (its stop event set, a queue's sentinel) is finished, not failed.

In a service group (several features in one process, kit/service.py) each thread belongs to the feature
whose code started it: the runner marks each feature's loop thread and its bus's message thread with
``set_owner``, and a vital thread inherits its starter's owner, so a feature's health shows only its
own threads' problems. A thread started from nowhere marked (owner None) counts for every feature.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("fieldkit.threads")
_local = threading.local()


def set_owner(name: str | None) -> None:
    """Vital threads started from this thread from now on belong to feature ``name``."""
    _local.owner = name


def current_owner() -> str | None:
    return getattr(_local, "owner", None)


@dataclass
class VitalThread:
    name: str
    target: Callable[[], None]
    stop: threading.Event
    backoff: tuple[float, float] = (0.5, 30.0)
    max_failures: int = 5
    window: float = 120.0
    healthy_after: float = 10.0
    failures: list[float] = field(default_factory=list)
    last_error: str = ""
    last_failure: float = 0.0
    given_up: bool = False
    finished: bool = False
    thread: threading.Thread | None = None
    owner: str | None = None

    def run(self) -> None:
        set_owner(self.owner)  # threads it starts belong to the same feature
        delay = self.backoff[0]
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                self.target()
            except Exception as e:
                now = time.monotonic()
                self.last_error, self.last_failure = f"{type(e).__name__}: {e}"[:300], now
                self.failures = [t for t in self.failures if now - t < self.window] + [now]
                if now - started > self.healthy_after:
                    delay = self.backoff[0]  # it had been running well: a fresh fault, not a crash loop
                log.exception("event=thread_failed thread=%s reason=%r failures=%d restart_in=%.1f",
                              self.name, self.last_error, len(self.failures), delay)
                if len(self.failures) >= self.max_failures:
                    self.given_up = True
                    log.error("event=thread_given_up thread=%s failures=%d window=%.0f reason=%r",
                              self.name, len(self.failures), self.window, self.last_error)
                    return
                if self.stop.wait(delay):
                    break
                delay = min(delay * 2, self.backoff[1])
                log.warning("event=thread_restarted thread=%s", self.name)
                continue
            break
        self.finished = True

    @property
    def problem(self) -> str:
        if self.given_up:
            return f"{self.name} keeps failing ({self.last_error})"
        if self.last_error and time.monotonic() - self.last_failure < self.healthy_after:
            return f"{self.name} failed and was restarted ({self.last_error})"
        return ""

    @property
    def dead(self) -> bool:
        """Ended without being asked to: given up, or killed by a BaseException."""
        if self.given_up:
            return True
        thread = self.thread
        # ident is None until the thread has started: a thread being started is not a dead one (under
        # load the runner's check could fall between registering and starting and end a healthy service).
        return (thread is not None and thread.ident is not None and not thread.is_alive() and not self.finished
                and not self.stop.is_set())


class Registry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: list[VitalThread] = []

    def start(self, name: str, target: Callable[[], None], stop: threading.Event | None = None,
              **options) -> VitalThread:
        vital = VitalThread(name, target, stop or threading.Event(), owner=current_owner(), **options)
        vital.thread = threading.Thread(target=vital.run, name=name, daemon=True)
        vital.thread.start()
        with self._lock:
            self._threads = [t for t in self._threads if not t.finished] + [vital]
        return vital

    def reset(self) -> None:
        """Forget threads started before a service's run (tests run several services in one process)."""
        with self._lock:
            self._threads = [t for t in self._threads if not (t.finished or t.given_up or t.stop.is_set())]

    def _of(self, owner: str | None) -> list[VitalThread]:
        with self._lock:
            return [t for t in self._threads if owner is None or t.owner in (None, owner)]

    def problems(self, owner: str | None = None) -> list[str]:
        """Problems of every thread, or of feature ``owner``'s (and unowned) threads."""
        return [p for p in (t.problem for t in self._of(owner)) if p]

    def dead(self, owner: str | None = None) -> list[str]:
        return [t.name for t in self._of(owner) if t.dead]


REGISTRY = Registry()


def start_vital(name: str, target: Callable[[], None], stop: threading.Event | None = None,
                **options) -> threading.Thread:
    """Run ``target`` on a supervised daemon thread (see the module doc); returns the thread to join."""
    vital = REGISTRY.start(name, target, stop, **options)
    assert vital.thread is not None
    return vital.thread


def problems(owner: str | None = None) -> list[str]:
    return REGISTRY.problems(owner)


def dead(owner: str | None = None) -> list[str]:
    return REGISTRY.dead(owner)
