"""The power service: reads the sources, publishes the state and HA discovery, keeps history, and
shuts the kit down cleanly before the battery dies."""

from __future__ import annotations

import logging
import shlex
import sqlite3
import subprocess
import time

from kit import payloads, topics
from kit.payloads import number
from kit.service import ServiceContext
from power.discovery import HA_STATUS, discovery_configs
from power.history import HistoryRecorder
from power.lowpower import CRITICAL, WARNING, LowPowerMonitor, LowPowerSettings, Transition
from power.sources import Sources
from power.state import PowerState

log = logging.getLogger("fieldkit.power")

SIM_CMD = "sim"  # fieldkit/<kit>/power/cmd/sim: a lead rehearses a failing battery (simulation only)


class PowerService:
    def __init__(self, ctx: ServiceContext, sources: Sources):
        c = ctx.config
        self.ctx, self.sources = ctx, sources
        self.state = PowerState(c["power.stale_seconds"], c["power.battery_capacity_wh"], c["power.soc_floor_percent"])
        self.low = LowPowerMonitor(LowPowerSettings.from_config(c))
        self.history = HistoryRecorder.from_config(ctx.db, c)
        self.state_topic = topics.state(ctx.config.kit_id, "power")
        self._announce = True  # discovery configs (re)published on the loop's thread
        self._announced_connects = 0
        self._last_publish = 0.0
        self._shutdown_retry_at: float | None = None
        self.snapshot: dict = {}
        self._started = time.monotonic()
        self.shutdown_problem = ""

    # -- bus ------------------------------------------------------------------------------------
    def attach(self) -> None:
        bus = self.ctx.bus
        if self.ctx.config["power.ha_discovery"]:
            # HA says a bare "online", not JSON: the core bus would drop it, so take it raw from paho,
            # and let the core bus renew the subscription on every reconnect.
            bus.client.message_callback_add(HA_STATUS, self._on_ha_status)
            bus.subscribe(HA_STATUS, lambda _t, _p: None)
        sim_fields = {"soc_percent": number(), "battery_volts": number(), "load_watts": number()}
        answer = topics.event(self.ctx.config.kit_id, "power", SIM_CMD)
        bus.subscribe(topics.cmd(self.ctx.config.kit_id, "power", SIM_CMD),
                      payloads.checked(sim_fields, self._on_sim_cmd, lambda _t, refusal: bus.publish(answer, refusal)))

    def _on_ha_status(self, _client, _userdata, msg) -> None:
        if msg.payload.strip().lower() == b"online":
            log.info("event=ha_online action=republish")
            self._announce = True

    def _on_sim_cmd(self, _topic: str, payload: dict) -> None:
        world = self.sources.sim.world if self.sources.sim else None
        if world is None:
            log.warning("event=sim_cmd_ignored reason=not_simulating")
            return
        try:
            if "soc_percent" in payload:
                world.soc = min(1.0, max(0.0, float(payload["soc_percent"]) / 100.0))
            if "battery_volts" in payload:
                v = payload["battery_volts"]
                world.battery_v_override = None if v is None else float(v)
            if "load_watts" in payload:
                world.load_w = max(0.0, float(payload["load_watts"]))
        except (TypeError, ValueError):
            log.warning("event=sim_cmd_bad payload=%s", str(payload)[:200])

    def announce(self) -> None:
        c = self.ctx.config
        if c["power.ha_discovery"]:
            for topic, config in discovery_configs(c.kit_id, c["power.ha_prefix"]).items():
                self.ctx.bus.publish(topic, config, retain=True, qos=1)
        if self.snapshot:
            self.publish_state()

    def publish_state(self) -> None:
        self.ctx.bus.publish(self.state_topic, self.snapshot, retain=True, qos=1)
        self._last_publish = time.monotonic()

    # -- one turn of the loop --------------------------------------------------------------------
    def step(self) -> None:
        now = time.monotonic()
        readings = self.sources.drain()
        for kind, fields, at, port in readings:
            self.state.update(kind, fields, at, port)
        was_available = self.snapshot.get("available")
        self.snapshot = self.state.snapshot(now, self.ctx.clock.time())
        self.snapshot["low"] = self.low.level
        self._health()
        bus = self.ctx.bus
        if bus.is_connected and (self._announce or bus.connects != self._announced_connects):
            self._announce, self._announced_connects = False, bus.connects
            self.announce()
        if (readings or was_available != self.snapshot["available"]
                or now - self._last_publish >= self.ctx.config["power.publish_seconds"]):
            self.publish_state()
        try:
            self.history.add(self.snapshot, self.snapshot["time"])
        except sqlite3.Error as e:  # a busy or full disk loses a history row, never the service
            log.warning("event=history_write_failed error=%s", e)
        battery = self.snapshot["battery"]
        if readings and battery["available"]:
            transition = self.low.observe(now, battery.get("soc"), battery.get("voltage"))
            if transition:
                self.on_transition(transition)
        if self._shutdown_retry_at is not None and now >= self._shutdown_retry_at:
            self._shutdown_retry_at = None
            self.low.rearm()

    def _health(self) -> None:
        # Reasons stay the same while the problem does: health is retained and must not churn.
        problems = [] if self.sources.kind == "none" else self.sources.problems()
        stale = self.ctx.config["power.stale_seconds"]
        if (self.sources.kind != "none" and not problems and not self.snapshot["available"]
                and time.monotonic() - self._started > stale):
            problems.append(f"no battery reading for over {stale:g} s — check the VE.Direct cable or the power source setting")
        if self.shutdown_problem:
            problems.append(self.shutdown_problem)
        elif self.low.level == CRITICAL:
            problems.append("battery critical — the kit is shutting down cleanly")
        elif self.low.level == WARNING:
            problems.append(f"battery low (below {self.low.s.warning_soc:g} %) — charge or swap it soon")
        state = "degraded" if problems else "ok"
        reason = "; ".join(problems)
        if (state, reason) != (self.ctx.health_state, self.ctx.health_detail.get("reason", "")):
            self.ctx.health(state, **({"reason": reason} if reason else {}))

    # -- low power -------------------------------------------------------------------------------
    def on_transition(self, t: Transition) -> None:
        payload = {"level": t.level, "soc_percent": t.soc_percent, "voltage": t.voltage, "reason": t.reason}
        log.warning("event=power_low level=%s previous=%s soc=%s voltage=%s", t.level, t.previous,
                    t.soc_percent, t.voltage)
        self.snapshot["low"] = t.level
        self.ctx.bus.publish(topics.event(self.ctx.config.kit_id, *topics.POWER_LOW), payload, qos=1)
        self.publish_state()
        self._record("power.low", {**payload, "previous": t.previous})
        if t.level == CRITICAL:
            self.shut_down(payload)
        elif t.level == "ok":
            self.shutdown_problem = ""

    def _record(self, event_type: str, payload: dict) -> None:
        """A ledger event; a database that cannot take it must not stop a shutdown."""
        try:
            with self.ctx.db.transaction() as conn:
                self.ctx.ledger.append(conn, event_type, payload)
        except sqlite3.Error as e:
            log.error("event=ledger_write_failed type=%s error=%s", event_type, e)

    def simulating(self) -> bool:
        """A simulated battery must never switch off the laptop running a demo."""
        c = self.ctx.config
        return (c.simulate or self.sources.kind == "sim") and not c["kit.simulate_host_actions"]

    def shut_down(self, payload: dict) -> None:
        command = self.ctx.config["power.shutdown_command"]
        if self.simulating():
            log.warning("event=shutdown_simulated reason=simulation detail=%r", f"would run: {command}")
            self._record("power.shutdown_simulated", {**payload, "command": command})
            self.shutdown_problem = f"battery critical (simulated) — would run: {command} (not run under simulation)"
            self._health()
            return
        self._record("power.shutdown", {**payload, "command": command})
        try:
            self.history.flush()
        except sqlite3.Error as e:
            log.warning("event=history_write_failed error=%s", e)
        # Everything written so far goes into the main database file before the power goes.
        try:
            self.ctx.db.checkpoint()
        except Exception as e:  # a busy reader must not stop the shutdown
            log.warning("event=checkpoint_failed error=%s", e)
        log.warning("event=shutdown command=%r", command)
        try:
            result = subprocess.run(shlex.split(command), capture_output=True, timeout=60)
            ok, detail = result.returncode == 0, result.stderr.decode(errors="replace")[-300:]
        except (OSError, ValueError, subprocess.TimeoutExpired) as e:
            ok, detail = False, str(e)
        if not ok:
            log.error("event=shutdown_failed command=%r detail=%s", command, detail)
            self._record("power.shutdown_failed", {"command": command, "detail": detail})
            self.shutdown_problem = (f"the battery is critical but the shutdown command failed "
                                     f"({detail.strip() or 'no detail'}); retrying in a minute")
            self._health()
            self._shutdown_retry_at = time.monotonic() + 60


def run(ctx: ServiceContext) -> None:
    sources = Sources(ctx.config).start()
    service = PowerService(ctx, sources)
    service.attach()
    log.info("event=power_started source=%s ports=%s", sources.kind, ",".join(i.port for i in sources.items))
    try:
        while ctx.sleep(0.25):
            service.step()
    finally:
        service.history.flush()
        sources.stop()
