"""The lead service: runs the evening's run-sheet on this kit and shares it with the site.

It folds the run-sheet and every kit's Next slot / Running late into the evening's times
(lead/evening.py), announces each slot's start, last minute and end on ``lead/event/slot`` (the cue
sheet's ``slot`` triggers react), keeps ``lead/state`` (retained) for the screens, and carries the
run-sheet events to and from the site's other kits over the site link.

A moment is announced once (``lead_fired``), also across restarts; one that fell while the kit was
off longer than ``LATE_GRACE_SECONDS`` is recorded as missed, not announced an hour late.
"""

from __future__ import annotations

import logging
import time

from kit import topics
from kit.service import ServiceContext
from kit.sitelink import Channel, PeerEvent, SiteLink
from lead.evening import (
    SHARED_TYPES,
    SLOT_ENDED,
    SLOT_STARTED,
    Evening,
    evening,
    peer_payload_problem,
    store_peer_event,
    version,
)
from lead.incidents import INCIDENT_TYPES, peer_incident_problem, store_peer_incident, unresolved_count
from lead.incidents_auto import IncidentWatcher
from lead.schedule import moments

log = logging.getLogger("fieldkit.lead")
LATE_GRACE_SECONDS = 120.0
STATE_EVERY_SECONDS = 30.0


class EveningRunner:
    def __init__(self, ctx: ServiceContext):
        self.ctx = ctx
        self.kit = ctx.config.kit_id
        self.tz = ctx.config.tz
        self.ending_seconds = float(ctx.config["lead.ending_seconds"])
        self.evening = Evening(None, [])
        self._version: tuple[int, int] | None = None
        self._state: dict | None = None
        self._state_at = 0.0
        self.link = SiteLink(ctx.db, ctx.ledger, ctx.bus, ctx.config.site, self.kit)
        # The incident log rides on the lead's channel: one cursor per peer, one catch-up for both.
        self.link.register(Channel("lead", SHARED_TYPES + INCIDENT_TYPES, self._validate, self._store,
                                   after_store=lambda _e, _r: self.link.wake.set(),
                                   catchup_seconds=float(ctx.config["lead.catchup_seconds"])))
        self.incidents = IncidentWatcher(ctx)

    # -- the site link's part -------------------------------------------------------------------------
    def _validate(self, event: PeerEvent) -> str | None:
        if event.type in INCIDENT_TYPES:
            return peer_incident_problem(event.type, event.payload)
        return peer_payload_problem(event.type, event.payload, self.tz)

    def _store(self, conn, event: PeerEvent) -> bool:
        if event.type in INCIDENT_TYPES:
            stored = store_peer_incident(conn, event.origin_kit, event.id, event.type, event.hlc, event.payload)
            if stored:
                log.info("event=peer_incident origin=%s type=%s incident=%s", event.origin_kit, event.type,
                         event.payload["incident"])
            return stored
        stored = store_peer_event(conn, event.origin_kit, event.seq, event.id, event.type, event.hlc, event.payload)
        if stored:
            log.info("event=peer_lead_event origin=%s type=%s", event.origin_kit, event.type)
        return stored

    # -- the evening ---------------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Fold the evening again when an event arrived; True when it changed."""
        current = version(self.ctx.db.conn)
        if current == self._version:
            return False
        self._version = current
        self.evening = evening(self.ctx.db.conn, self.kit, self.tz)
        return True

    def announce_due(self, now: float) -> list[dict]:
        """Publish every slot moment that is due and not yet announced; returns what was published."""
        sheet = self.evening.sheet
        if sheet is None:
            return []
        due = [(at, when, t) for at, when, t in moments(self.evening.slots, self.ending_seconds) if at <= now]
        if not due:
            return []
        keys = [(sheet.digest, t.slot.index, when, int(round(at))) for at, when, t in due]
        fired = {tuple(r) for r in self.ctx.db.query(
            "SELECT runsheet, slot, moment, at FROM lead_fired WHERE runsheet = ?", (sheet.digest,))}
        fresh = [(key, m) for key, m in zip(keys, due, strict=True) if key not in fired]
        if not fresh:
            return []
        out = []
        with self.ctx.db.transaction() as conn:
            for key, (at, when, t) in fresh:
                announce = now - at <= LATE_GRACE_SECONDS
                conn.execute("INSERT OR IGNORE INTO lead_fired (runsheet, slot, moment, at, fired_at, announced)"
                             " VALUES (?,?,?,?,?,?)", (*key, now, int(announce)))
                if when in ("start", "end"):  # the evening's numbers count per slot from these (kit/metrics.py)
                    self.ctx.ledger.append(conn, SLOT_STARTED if when == "start" else SLOT_ENDED, {
                        "runsheet": sheet.digest, "slot": t.slot.index, "name": t.slot.name, "stage": t.slot.stage,
                        "at": round(at, 3)})
                if announce:
                    message = {"when": when, "slot": t.slot.name, "index": t.slot.index, "stage": t.slot.stage,
                               "host": t.slot.host, "starts_at": round(t.start, 3), "ends_at": round(t.end, 3),
                               "runsheet": sheet.digest}
                    if t.slot.drop and t.slot.drop["at"] == when:
                        message["drop"] = t.slot.drop  # pos opens it (one drop for the site, whichever kit is first)
                    out.append(message)
                else:
                    log.info("event=slot_moment_missed slot=%r when=%s late_s=%.0f", t.slot.name, when, now - at)
        for message in out:  # after the commit: a restart never announces it twice
            self.ctx.bus.publish(topics.event(self.kit, *topics.LEAD_SLOT), message, qos=1)
            log.info("event=slot_%s slot=%r index=%d", message["when"], message["slot"], message["index"])
        return out

    def state(self, now: float) -> dict:
        sheet = self.evening.sheet
        view = self.evening.at(now).as_dict() if sheet else {"current": None, "next": None, "behind_seconds": 0,
                                                              "finished": False}
        return {"runsheet": {"name": sheet.name, "digest": sheet.digest, "slots": len(sheet.slots)} if sheet else None,
                **view, "open_incidents": unresolved_count(self.ctx.db.conn)}

    def publish_state(self, now: float, force: bool = False) -> None:
        state = self.state(now)
        if force or state != self._state or time.monotonic() - self._state_at >= STATE_EVERY_SECONDS:
            self.ctx.bus.publish(topics.state(self.kit, "lead"), {**state, "at": round(now, 3)}, retain=True)
            self._state, self._state_at = state, time.monotonic()

    def health(self) -> tuple[str, str]:
        if self.evening.sheet is None:
            return "ok", "no run-sheet imported"
        return "ok", ""


def run(ctx: ServiceContext) -> None:
    runner = EveningRunner(ctx)
    runner.link.start()
    runner.incidents.start()
    ctx.lead = runner  # type: ignore[attr-defined]  # tests reach the running evening through ctx
    runner.refresh()
    runner.publish_state(ctx.clock.time(), force=True)
    last_health = None
    log.info("event=lead_started runsheet=%s", runner.evening.sheet.name if runner.evening.sheet else "-")
    while not ctx.stopping.is_set():
        ctx.beat()
        runner.link.pump()
        runner.link.wait(0.25)
        now = ctx.clock.time()
        runner.refresh()
        runner.incidents.tick()
        runner.announce_due(now)
        runner.publish_state(now)
        state = runner.health()
        if state != last_health and ctx.bus.is_connected:
            ctx.health(state[0], reason=state[1]) if state[1] else ctx.health(state[0])
            last_health = state
