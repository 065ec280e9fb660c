"""The runner of long-running services: ``fieldkit run <feature>``.

It loads config, opens the database (shared lock, migrations applied), connects the bus with the
feature's last will, runs the feature's loop in a worker thread, answers SIGTERM/SIGINT, tells
systemd READY=1 and pings WATCHDOG=1 only while the process is really alive: the loop shows signs of
life, paho's network thread runs and no vital thread (kit/threads.py) is dead. A failed and restarted
thread makes health ``degraded`` with the reason for a while; a dead bus loop or a thread that keeps dying
ends the process non-zero (after a last ``degraded`` health, if the bus can still send it) so systemd or
``fieldkit up`` restarts the service.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kit import sdnotify, threads
from kit.bus import Bus
from kit.clock import KitClock
from kit.config import Config
from kit.db import Database, DatabaseLock, apply_migrations, pending_migrations
from kit.features import all_migration_sets
from kit.ledger import Ledger

log = logging.getLogger("fieldkit.service")


@dataclass
class ServiceContext:
    name: str
    config: Config
    db: Database
    bus: Bus
    clock: KitClock
    ledger: Ledger
    stopping: threading.Event = field(default_factory=threading.Event)
    last_beat: float = field(default_factory=time.monotonic)
    health_state: str = "ok"
    health_detail: dict = field(default_factory=dict)
    announced: tuple[str, dict] | None = None  # the health last published (feature's state + vital threads)

    def sleep(self, seconds: float) -> bool:
        """Wait up to ``seconds``; False when the service is stopping. Counts as a sign of life."""
        self.beat()
        stopped = self.stopping.wait(seconds)
        self.beat()
        return not stopped

    def beat(self) -> None:
        self.last_beat = time.monotonic()

    def health(self, state: str = "ok", **detail: Any) -> None:
        """Publish this service's health (retained); ``degraded`` with a reason a lead can act on.

        A vital thread's failure (kit/threads.py) is added on top: the feature's own ``ok`` never hides it.
        """
        self.health_state, self.health_detail = state, detail
        self.publish_health()

    def effective_health(self) -> tuple[str, dict]:
        problems = threads.problems()
        if not problems:
            return self.health_state, self.health_detail
        reasons = [self.health_detail["reason"]] if self.health_detail.get("reason") else []
        return "degraded", {**self.health_detail, "reason": "; ".join(reasons + problems)}

    def publish_health(self) -> tuple[str, dict]:
        state, detail = self.effective_health()
        self.bus.publish_health(state, **detail)
        sdnotify.notify(f"STATUS={state} {detail.get('reason', '')}".strip())
        self.announced = (state, detail)
        return self.announced


def open_database(config: Config) -> Database:
    return Database(config.db_path, config["db.busy_timeout_ms"])


def make_context(name: str, config: Config, bus: Bus | None = None) -> ServiceContext:
    # Simulating (a laptop demo): a lead's clock correction is kept by the kit, never set on the host.
    method = "offset" if config.simulate and not config["kit.simulate_host_actions"] else config["kit.clock_method"]
    clock = KitClock(config.data_dir, config["kit.clock_assume_synced"], method)
    return ServiceContext(
        name=name,
        config=config,
        db=open_database(config),
        bus=bus or Bus.from_config(config, name),
        clock=clock,
        ledger=Ledger(config.kit_id, clock, config["site.max_clock_ahead_seconds"]),
    )


def prepare_database(config: Config) -> DatabaseLock:
    """Hold the database shared while running; apply pending migrations first (briefly exclusive).

    Normally nothing is pending: `fieldkit up` and the appliance's oneshot unit migrate before
    services start, so services starting together only ever take the shared lock.
    """
    lock = DatabaseLock(config.db_path)
    lock.shared()
    db = open_database(config)
    try:
        if pending_migrations(db, all_migration_sets()):
            lock.release()
            lock.exclusive(wait_seconds=60)
            apply_migrations(db, all_migration_sets())
            lock.shared()  # flock converts in place
    finally:
        db.close()
    return lock


def run_service(name: str, loop: Callable[[ServiceContext], None], config: Config) -> int:
    lock = prepare_database(config)
    threads.REGISTRY.reset()
    ctx = make_context(name, config)
    failure: list[BaseException] = []

    def stop(signum, _frame) -> None:
        log.info("event=stopping signal=%s", signal.Signals(signum).name)
        ctx.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    ctx.bus.start()

    def work() -> None:
        try:
            loop(ctx)
        except BaseException as e:  # a programming error: crash fast, let systemd restart us
            log.exception("event=service_crashed name=%s", name)
            failure.append(e)
        finally:
            ctx.stopping.set()

    worker = threading.Thread(target=work, name=f"{name}-loop", daemon=True)
    worker.start()
    interval = sdnotify.watchdog_interval(config["service.watchdog_seconds"])
    stale_after = max(interval * 2, 5.0)
    sdnotify.notify("READY=1")
    log.info("event=started name=%s kit=%s", name, config.kit_id)
    announced_connects = 0
    while not ctx.stopping.wait(min(interval, 1.0)):
        fatal = _fatal_reason(ctx)
        if fatal:
            log.error("event=service_unhealthy name=%s reason=%r action=exit", name, fatal)
            ctx.health_state, ctx.health_detail = "degraded", {"reason": fatal}
            ctx.publish_health()  # if the bus can still send it; the will says offline either way
            failure.append(RuntimeError(fatal))
            break
        if ctx.announced is not None and ctx.effective_health() != ctx.announced and ctx.bus.is_connected:
            ctx.publish_health()  # a vital thread failed, or has run well again
        if ctx.bus.connects != announced_connects and ctx.bus.is_connected:
            announced_connects = ctx.bus.connects
            ctx.publish_health()
        if time.monotonic() - ctx.last_beat < stale_after:
            sdnotify.notify("WATCHDOG=1")
        else:
            log.warning("event=loop_stalled name=%s seconds=%.0f", name, time.monotonic() - ctx.last_beat)
    ctx.stopping.set()
    sdnotify.notify("STOPPING=1")
    worker.join(timeout=10)
    if ctx.bus.loop_alive:
        ctx.bus.stop(clean=not failure)
    ctx.db.close()
    lock.release()
    log.info("event=stopped name=%s", name)
    return 1 if failure else 0


def _fatal_reason(ctx: ServiceContext) -> str:
    """Why this process must end so it is restarted, or ''."""
    if not ctx.bus.loop_alive:
        return "the bus network loop has stopped"
    dead = threads.dead()
    if dead:
        return f"vital thread(s) stopped: {', '.join(dead)}"
    return ""
