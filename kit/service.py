"""The runner of long-running services: ``fieldkit run <feature>``, or a group: ``fieldkit run a b c``.

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
    announced_connects: int = 0  # the bus connection that health was published on
    group: list[ServiceContext] = field(default_factory=list, repr=False, compare=False)  # every service of this process

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
        problems = threads.problems(self.name)
        if not problems:
            return self.health_state, self.health_detail
        reasons = [self.health_detail["reason"]] if self.health_detail.get("reason") else []
        return "degraded", {**self.health_detail, "reason": "; ".join(reasons + problems)}

    def publish_health(self) -> tuple[str, dict]:
        state, detail = self.effective_health()
        self.bus.publish_health(state, **detail)
        self.announced = (state, detail)
        sdnotify.notify(_status_line(self.group or [self]))
        return self.announced


def _status_line(members: list[ServiceContext]) -> str:
    """systemd's STATUS= of the process: the one service's health, or each group member's."""
    if len(members) == 1:
        state, detail = members[0].announced or ("starting", {})
        return f"STATUS={state} {detail.get('reason', '')}".strip()
    parts = []
    for m in members:
        state, detail = m.announced or ("starting", {})
        parts.append(f"{m.name}={state}" + (f" ({detail['reason']})" if detail.get("reason") else ""))
    return "STATUS=" + "; ".join(parts)


def open_database(config: Config) -> Database:
    return Database(config.db_path, config["db.busy_timeout_ms"])


def make_context(name: str, config: Config, bus: Bus | None = None) -> ServiceContext:
    # Simulating (a laptop demo): a lead's clock correction is kept by the kit, never set on the host.
    method = "offset" if config.simulate and not config["kit.simulate_host_actions"] else config["kit.clock_method"]
    clock = KitClock(config.data_dir, config["kit.clock_assume_synced"], method)
    db = open_database(config)
    db.checkpoint_in_background()  # a service runs for the evening: no commit pays for a checkpoint
    return ServiceContext(
        name=name,
        config=config,
        db=db,
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
    return run_services([(name, loop)], config)


def run_services(members: list[tuple[str, Callable[[ServiceContext], None]]], config: Config) -> int:
    """Run one service, or a service group: several features' loops as supervised threads of one process.

    Each member keeps what makes it a service of its own: its MQTT client (its last will, its health
    topic), its database connection, its loop thread, its vital threads (kit/threads.py, by owner). The
    process is one unit for systemd: READY=1 once, WATCHDOG=1 only while every member is alive, and a
    member whose bus loop or vital thread is dead ends the whole process non-zero so it is restarted
    (the others say ``offline`` first, the dead one leaves its ``degraded`` reason).
    """
    sdnotify.claim()  # before anything can start a child that would inherit $NOTIFY_SOCKET
    names = [name for name, _ in members]
    label = "+".join(names)
    lock = prepare_database(config)
    threads.REGISTRY.reset()
    stopping = threading.Event()  # one for the process: a signal or a member's end stops every member
    contexts = [make_context(name, config) for name in names]
    for ctx in contexts:
        ctx.stopping, ctx.group = stopping, contexts
    crashed: set[str] = set()
    failed: set[str] = set()

    def stop(signum, _frame) -> None:
        log.info("event=stopping signal=%s", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    for ctx in contexts:
        ctx.bus.start()

    def work(ctx: ServiceContext, loop: Callable[[ServiceContext], None]) -> None:
        threads.set_owner(ctx.name)  # the vital threads this loop starts are this feature's
        try:
            loop(ctx)
        except BaseException:  # a programming error: crash fast, let systemd restart us
            log.exception("event=service_crashed name=%s", ctx.name)
            crashed.add(ctx.name)
        finally:
            stopping.set()

    workers = [threading.Thread(target=work, args=(ctx, loop), name=f"{ctx.name}-loop", daemon=True)
               for ctx, (_, loop) in zip(contexts, members, strict=True)]
    for worker in workers:
        worker.start()
    interval = sdnotify.watchdog_interval(config["service.watchdog_seconds"])
    stale_after = max(interval * 2, 5.0)
    sdnotify.notify("READY=1")
    log.info("event=started name=%s kit=%s", label, config.kit_id)
    while not stopping.wait(min(interval, 1.0)):
        fatal = [(ctx, reason) for ctx in contexts if (reason := _fatal_reason(ctx))]
        for ctx, reason in fatal:
            log.error("event=service_unhealthy name=%s reason=%r action=exit", ctx.name, reason)
            failed.add(ctx.name)
            ctx.health_state, ctx.health_detail = "degraded", {"reason": reason}
            ctx.publish_health()  # if the bus can still send it; the will says offline either way
        if fatal:
            if len(contexts) > 1:
                log.error("event=group_exit group=%s reason=%r", label, f"{fatal[0][0].name}: {fatal[0][1]}")
            break
        for ctx in contexts:
            _republish_if_changed(ctx)
        stale = [ctx for ctx in contexts if time.monotonic() - ctx.last_beat >= stale_after]
        if not stale:
            sdnotify.notify("WATCHDOG=1")
        for ctx in stale:
            log.warning("event=loop_stalled name=%s seconds=%.0f", ctx.name, time.monotonic() - ctx.last_beat)
    stopping.set()
    sdnotify.notify("STOPPING=1")
    deadline = time.monotonic() + 10
    for worker in workers:
        worker.join(timeout=max(0.1, deadline - time.monotonic()))
    failed |= crashed
    for ctx in contexts:
        if ctx.bus.loop_alive:
            ctx.bus.stop(clean=ctx.name not in failed)
        ctx.db.close()
    lock.release()
    log.info("event=stopped name=%s", label)
    return 1 if failed else 0


def _republish_if_changed(ctx: ServiceContext) -> None:
    if not ctx.bus.is_connected:
        return
    if ctx.announced is not None and ctx.effective_health() != ctx.announced:
        ctx.publish_health()  # a vital thread failed, or has run well again
    elif ctx.bus.connects != ctx.announced_connects:
        ctx.publish_health()  # a restarted broker has lost the retained copy
    ctx.announced_connects = ctx.bus.connects


def _fatal_reason(ctx: ServiceContext) -> str:
    """Why this process must end so it is restarted, or ''."""
    if not ctx.bus.loop_alive:
        return "the bus network loop has stopped"
    dead = threads.dead(ctx.name)
    if dead:
        return f"vital thread(s) stopped: {', '.join(dead)}"
    return ""
