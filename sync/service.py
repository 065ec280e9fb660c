"""``fieldkit run sync``: reach HQ whenever there is a way, upload the backlog, pull documents.

Offline is the normal state of a kit: failing to reach HQ only lengthens the wait before the next
try (exponential backoff with jitter, capped); it never degrades the kit. A wrong token does, because
a lead must fix it. ``sync/cmd/now`` starts a session at once and is answered on ``sync/event/now``.
"""

from __future__ import annotations

import logging
import queue
import time

from kit import payloads, topics
from kit.config import ConfigError, load_config
from kit.service import ServiceContext
from sync.agent import SessionBusy, SyncAgent, retry_delay
from sync.client import HQRejectsKit, SyncError
from sync.credentials import NotJoined
from sync.mirror_loop import start_mirror

log = logging.getLogger("fieldkit.sync.service")
TICK_SECONDS = 0.5
# While online, new ledger events go up this soon after they were written.
ONLINE_FOLLOW_SECONDS = 2.0
# The privacy check (kit/privacy.py: erase when due, truncate what HQ holds) runs after every session and
# at least this often: it is here because HQ's acknowledgement, which gates it, moves only in a session.
PRIVACY_EVERY_SECONDS = 60.0


def run(ctx: ServiceContext) -> None:
    agent = SyncAgent(ctx.config, ctx.db, ctx.bus)
    ctx.mirror = start_mirror(ctx)
    requests: queue.Queue[dict] = queue.Queue(maxsize=100)  # a flood of "sync now" is one session, not 10,000
    answer_topic = topics.event(ctx.config.kit_id, "sync", "now")
    ctx.bus.subscribe(topics.cmd(ctx.config.kit_id, *topics.SYNC_NOW),
                      payloads.checked({}, lambda _t, msg: _ask(requests, msg),
                                       lambda _t, answer: ctx.bus.publish(answer_topic, answer, qos=1)), qos=1)
    low, high = ctx.config["sync.retry_min_seconds"], ctx.config["sync.retry_max_seconds"]
    interval = ctx.config["sync.interval_seconds"]
    failures, next_at, last_session = 0, 0.0, 0.0
    ctx.health("ok")
    agent.publish_state()
    published_backlog = None
    reload_config = False
    privacy_at = 0.0
    while ctx.sleep(TICK_SECONDS):
        asked = _drain(requests)
        now = time.monotonic()
        if now >= privacy_at:
            privacy_at = now + PRIVACY_EVERY_SECONDS
            _privacy_check(ctx)
        state = agent.state()
        due = bool(asked) or now >= next_at
        if agent.online and state["backlog"] and now - last_session >= ONLINE_FOLLOW_SECONDS:
            due = True
        if not due:
            if state["backlog"] != published_backlog:
                published_backlog = state["backlog"]
                agent.publish_state()
            continue
        last_session = now
        reply: dict = {}
        if reload_config:  # `fieldkit sync join` may have written a new address or token meanwhile
            try:
                agent.config = load_config()
            except ConfigError as e:
                log.warning("event=config_reload_failed error=%r", str(e))
        reload_config = False
        try:
            result = agent.run_session(progress=lambda *_: ctx.beat(), stop=ctx.stopping.is_set)
        except NotJoined as e:
            reload_config = True
            reply = {"ok": False, "error": str(e)}
            ctx.health("ok", detail="not joined to an HQ")
            next_at = now + interval
        except SessionBusy as e:
            reply = {"ok": False, "error": str(e)}
            next_at = now + 1.0
        except HQRejectsKit as e:
            reload_config = True
            reply = {"ok": False, "error": str(e)}
            failures += 1
            ctx.health("degraded", reason=f"HQ refuses this kit: {e}")
            next_at = now + retry_delay(failures, low, high)
        except SyncError as e:
            reply = {"ok": False, "error": str(e)}
            failures += 1
            delay = retry_delay(failures, low, high)
            next_at = now + delay
            log.info("event=sync_retry_later seconds=%.1f failures=%d", delay, failures)
            if ctx.health_state != "ok":
                ctx.health("ok")
        else:
            failures = 0
            next_at = now + interval
            reply = {"ok": True, **result.as_dict()}
            if ctx.health_state != "ok":
                ctx.health("ok")
        published_backlog = None
        privacy_at = 0.0  # HQ may now hold everything
        for msg in asked:
            ctx.bus.publish(topics.event(ctx.config.kit_id, "sync", "now"),
                            {"id": msg.get("id"), **reply, "state": agent.state()}, qos=1)
    agent.publish_state()


def _privacy_check(ctx: ServiceContext) -> None:
    import sqlite3

    from kit.features import load_features
    from kit.privacy import hooks_from, tick

    try:
        tick(ctx.db, ctx.config, ctx.ledger, hooks_from(load_features()), beat=ctx.beat)
    except sqlite3.OperationalError as e:  # the database was busy: the next check tries again
        log.warning("event=privacy_check_failed error=%r", str(e))


def _ask(requests: queue.Queue, msg: dict) -> None:
    try:
        requests.put_nowait(msg)
    except queue.Full:
        log.warning("event=bad_command topic=sync/cmd/now reason='too many requests waiting; dropped'")


def _drain(requests: queue.Queue) -> list[dict]:
    out = []
    while True:
        try:
            out.append(requests.get_nowait())
        except queue.Empty:
            return out
