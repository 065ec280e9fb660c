"""The cues service: owns the DMX widget, the GPIO lights and sensors and the mpv players.

It ticks the engine at ``cues.frame_rate``, listens on the bus (admissions, sales, battery news,
``cues/cmd/*``), picks up a newly imported cue sheet (refusing a broken one and keeping the old),
writes a light ledger event per fire / stop (from its own thread, so no trigger waits on the disk)
and keeps ``cues/state`` (retained) current for the cue screen.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time

from cues.clock import RealClock
from cues.documents import KIND, current_sheet_row, empty_sheet, load_current_sheet, sound_dir
from cues.engine import Engine, Outputs
from cues.sheet import Sheet, SheetError
from drivers.audio import open_audio
from drivers.base import DeviceUnavailable
from drivers.dmx import open_dmx
from drivers.gpio_inputs import SensorBank
from drivers.lights import LightBank, gpio_factory
from kit import payloads, topics
from kit.payloads import Field, flag, items, mapping, number, text
from kit.threads import start_vital

log = logging.getLogger("fieldkit.cues")
LEDGER_EVENTS = {"fired": "cues.fired", "stopped": "cues.stopped", "stop_all": "cues.stop_all"}
COMMANDS = ("fire", "go", "stop", "stop_all", "next", "back", "reload", "simulate")
# The fields each cues/cmd/<name> may carry (any command also takes id, by, source: kit/payloads.py).
COMMAND_FIELDS: dict[str, dict[str, Field]] = {
    "fire": {"cue": text(), "name": text()}, "stop": {"cue": text()},
    "simulate": {"sensor": text(80), "active": flag()},
    **{name: {} for name in ("go", "stop_all", "next", "back", "reload")},
}
SCANNED_FIELDS = {"colour": text(10), "rehearsal": flag(), "admitted_total": Field(int)}
SALE_FIELDS = {"receipt": text(80), "total_cents": Field(int), "items": items(), "seq": Field(int)}
SLOT_FIELDS = {"when": text(10, required=True), "slot": text(80, required=True)}
DROP_FIELDS = {"when": text(12, required=True), "drop": text(60, required=True)}
PICKUP_FIELDS = {"when": text(10, required=True), "orders": Field(int)}
POWER_LOW_FIELDS = {"level": text(20), "soc_percent": number(), "voltage": number()}
POWER_STATE_FIELDS = {"battery": mapping(), "soc_percent": number()}


class CueService:
    def __init__(self, config, db, bus, ledger, clock=None, outputs: Outputs | None = None):
        self.config, self.db, self.bus, self.ledger = config, db, bus, ledger
        self.clock = clock or RealClock()
        self.kit = config.kit_id
        self.sheet_version = 0
        self.problem = ""
        self._ledger_queue: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._state_lock = threading.Lock()
        # reload runs from the maintain loop and from cues/cmd/reload on the bus thread: one at a time,
        # or two threads close and reopen the same GPIO pins at once.
        self._reload_lock = threading.RLock()
        self._last_state = ""
        self.sensors: SensorBank | None = None
        self.lights: LightBank | None = None
        self._pins = None
        sheet = self._initial_sheet()
        if outputs is None:
            outputs = Outputs(dmx=self._open(open_dmx), audio=self._open(open_audio), sound_dir=sound_dir(config))
        outputs.publish = self._publish
        self.outputs = outputs
        self.engine = Engine(sheet, self.clock, outputs, tz=config.tz, power_policy=config["cues.low_battery"],
                             dim_percent=config["cues.low_battery_dim_percent"], listener=self._on_engine_event)
        self._open_gpio(sheet)

    # -- set-up ----------------------------------------------------------------------------------
    def _open(self, opener):
        try:
            return opener(self.config)
        except DeviceUnavailable as e:
            log.warning("event=output_unavailable error=%r", str(e))
            self.problem = str(e)
            return None

    def _initial_sheet(self) -> Sheet:
        try:
            sheet, self.sheet_version = load_current_sheet(self.db)
        except (SheetError, OSError) as e:
            log.error("event=cue_sheet_unreadable error=%r", str(e))
            self.problem = f"the stored cue sheet cannot be read: {e}"
            sheet, self.sheet_version = None, current_sheet_row(self.db)["version"]
        return sheet or empty_sheet()

    def _open_gpio(self, sheet: Sheet) -> None:
        """(Re)open the lights and sensors the sheet names; the engine drives lights through ``outputs``.

        Never called with the engine's lock held: closing a sensor joins gpiozero's thread, which may be
        waiting for that lock to report an edge.
        """
        with self.engine.lock:  # no tick is half-way through writing to the old lights when they close
            self.outputs.lights = None
        old, self.sensors, self.lights = (self.sensors, self.lights), None, None
        for bank in old:
            if bank is not None:
                bank.close()
        if not sheet.lights and not sheet.sensors:
            return
        self._pins = self._pins or gpio_factory(self.config)
        if self._pins is None:
            self.problem = "no GPIO on this machine: sensors and GPIO lights are off (set cues.gpio.backend)"
            return
        self.lights = LightBank(sheet.lights, self._pins) if sheet.lights else None
        self.outputs.lights = self.lights
        self.engine.resend_outputs()
        if sheet.sensors:
            self.sensors = SensorBank(sheet.sensors, self._pins, self.engine.sensor_event)

    def start(self) -> None:
        for pattern, fields, handler in (
            (topics.cmd(self.kit, "cues", "+"), lambda t: COMMAND_FIELDS.get(t.rsplit("/", 1)[-1]), self._on_command),
            (topics.event(self.kit, *topics.CHECKIN_SCANNED), SCANNED_FIELDS, lambda _t, p: self.engine.admission(p)),
            (topics.event(self.kit, *topics.POS_SALE), SALE_FIELDS, lambda _t, p: self.engine.sale(p)),
            (topics.event(self.kit, *topics.LEAD_SLOT), SLOT_FIELDS, lambda _t, p: self.engine.slot_event(p)),
            (topics.event(self.kit, *topics.POS_PICKUP_WINDOW), PICKUP_FIELDS, lambda _t, p: self.engine.pickup_window(p)),
            (topics.event(self.kit, *topics.POS_DROP), DROP_FIELDS, lambda _t, p: self.engine.drop_event(p)),
            (topics.event(self.kit, *topics.POWER_LOW), POWER_LOW_FIELDS, self._on_power_low),
            (topics.state(self.kit, "power"), POWER_STATE_FIELDS, self._on_power_state),
            (topics.event(self.kit, *topics.SYNC_DOCUMENT), payloads.DOCUMENT_EVENT, self._on_document),
        ):
            self.bus.subscribe(pattern, payloads.checked(fields, handler, self._refused), qos=1)
        for target, name in ((self._tick_loop, "cues-tick"), (self._ledger_loop, "cues-ledger")):
            self._threads.append(start_vital(name, target, self._stop))
        self.publish_state(force=True)

    def _refused(self, topic: str, answer: dict) -> None:
        if "/cmd/" in topic:
            self.bus.publish(topics.event(self.kit, "cues", "done"), {**answer, "command": topic.rsplit("/", 1)[-1]})

    def stop(self) -> None:
        self._stop.set()
        self._ledger_queue.put(None)
        for thread in self._threads:
            thread.join(timeout=5)
        for bank in (self.sensors, self.lights):
            if bank is not None:
                bank.close()
        for out in (self.outputs.dmx, self.outputs.audio):
            if out is not None:
                out.close()

    # -- loops -----------------------------------------------------------------------------------
    def _tick_loop(self) -> None:
        period = 1.0 / max(1, self.config["cues.frame_rate"])
        last_state = 0.0
        while not self._stop.wait(period):
            self.engine.tick()
            if time.monotonic() - last_state >= 0.2:  # the cue screen needs ~5 updates a second, no more
                last_state = time.monotonic()
                self.publish_state()

    def _ledger_loop(self) -> None:
        while not self._stop.is_set():
            item = self._ledger_queue.get()
            if item is None:
                return
            kind, payload = item
            try:
                with self.db.transaction() as conn:
                    self.ledger.append(conn, kind, payload)
            except Exception:
                log.exception("event=ledger_write_failed type=%s", kind)

    def maintain(self) -> None:
        """Once a second: reconnect outputs, pick up a new cue sheet, report health."""
        if self.outputs.dmx is not None:
            self.outputs.dmx.maintain()
        with self._reload_lock:
            row = current_sheet_row(self.db)
            if row is not None and row["version"] != self.sheet_version:
                self._reload()

    def reload(self) -> str:
        """Load the newest imported sheet; a sheet that fails validation leaves the running one in place."""
        with self._reload_lock:
            return self._reload()

    def _reload(self) -> str:
        try:
            sheet, version = load_current_sheet(self.db)
        except (SheetError, OSError) as e:
            row = current_sheet_row(self.db)
            self.sheet_version = row["version"] if row else self.sheet_version
            self.problem = f"cue sheet v{self.sheet_version} refused, the previous one keeps running: {e}"
            log.warning("event=cue_sheet_refused version=%s error=%r", self.sheet_version, str(e))
            return self.problem
        if sheet is None:
            return "no cue sheet imported"
        self.engine.load(sheet)
        self.sheet_version = version
        self.problem = ""
        self._open_gpio(sheet)
        log.info("event=cue_sheet_loaded version=%s name=%r", version, sheet.name)
        self.publish_state(force=True)
        return f"loaded {sheet.name} (v{version})"

    # -- bus -------------------------------------------------------------------------------------
    def _publish(self, topic: str, payload: dict) -> None:
        if not topic.startswith((topics.ROOT + "/", "homeassistant/")):
            topic = f"{topics.ROOT}/{self.kit}/{topic.lstrip('/')}"
        self.bus.publish(topic, payload)

    def _on_engine_event(self, kind: str, payload: dict) -> None:
        if kind in LEDGER_EVENTS:
            self._ledger_queue.put((LEDGER_EVENTS[kind], payload))
        self.bus.publish(topics.event(self.kit, "cues", kind), payload)

    def _on_power_low(self, _topic: str, payload: dict) -> None:
        soc = payload.get("soc_percent")
        self.engine.battery_event(str(payload.get("level", "")), soc if isinstance(soc, int | float) else None)

    def _on_power_state(self, _topic: str, payload: dict) -> None:
        battery = payload.get("battery")
        soc = battery.get("soc") if isinstance(battery, dict) else payload.get("soc_percent")
        if isinstance(soc, int | float) and not isinstance(soc, bool):
            with self.engine.lock:
                self.engine.battery.soc_percent = float(soc)

    def _on_document(self, _topic: str, payload: dict) -> None:
        if payload.get("kind") != KIND or not payload.get("path") or payload.get("applied"):
            return  # the sync agent already imported it; maintain() picks up the new version
        from kit.documents import DocumentError, import_document

        try:
            path = payloads.downloaded_document(self.config, payload)
            import_document(self.config, self.db, KIND, path.read_bytes(), path.name, source="hq",
                            source_version=str(payload.get("source_version") or ""))
        except ValueError as e:  # a path outside the download folder: a bad message, not a bad sheet
            payloads.refuse(_topic, payload, str(e))
        except (DocumentError, OSError) as e:
            self.problem = f"cue sheet from HQ refused: {e}"
            log.warning("event=cue_sheet_refused source=hq error=%r", str(e))

    def _on_command(self, topic: str, payload: dict) -> None:
        name = topic.rsplit("/", 1)[-1]
        answer = {"id": payload.get("id"), "command": name, "ok": True}
        try:
            answer["message"] = self.command(name, payload)
        except (KeyError, ValueError) as e:
            answer.update(ok=False, error=str(e.args[0]) if e.args else str(e))
            log.warning("event=command_refused command=%s error=%r", name, str(e))
        self.bus.publish(topics.event(self.kit, "cues", "done"), answer)

    def command(self, name: str, payload: dict) -> str:
        """One command from the bus, the CLI or the cue screen; KeyError/ValueError say what is wrong."""
        by = str(payload.get("by") or "manual")[:40]
        if name == "fire":
            cue_name = str(payload.get("cue") or payload.get("name") or "")
            if cue_name not in {c.name for c in self.engine.sheet.cues}:
                raise KeyError(f"no cue called {cue_name!r}")
            return f"fired {self.engine.fire(cue_name, by).title}"
        if name == "go":
            cue = self.engine.go(by)
            return f"fired {cue.title}" if cue else "end of the cue list"
        if name == "stop":
            return f"stopped {self.engine.stop(str(payload.get('cue', '')), by)} run(s)"
        if name == "stop_all":
            self.engine.stop_all(by)
            return "stopped everything"
        if name in ("next", "back"):
            cue = self.engine.move_playhead(1 if name == "next" else -1)
            return f"standing by: {cue.title if cue else 'end of the list'}"
        if name == "reload":
            return self.reload()
        if name == "simulate":
            return self.simulate(str(payload.get("sensor", "")), bool(payload.get("active", True)))
        raise ValueError(f"unknown command {name!r}; known: {', '.join(COMMANDS)}")

    # -- state -----------------------------------------------------------------------------------
    @property
    def simulated_gpio(self) -> bool:
        from gpiozero.pins.mock import MockFactory

        return isinstance(self._pins, MockFactory)

    def simulate(self, sensor: str, active: bool) -> str:
        """Demo and rehearsal: act out a sensor on gpiozero's mock pins (the real trigger path follows)."""
        if not self.simulated_gpio or self.sensors is None:
            raise ValueError("sensors can only be acted out when GPIO is simulated")
        spec = self.engine.sheet.sensors.get(sensor)
        if spec is None or sensor not in self.sensors.devices:
            raise KeyError(f"no sensor called {sensor!r}")
        if spec.kind == "light":
            dark = 0.1 if spec.active_when == "below" else 0.9
            self.sensors.simulated_adc.set_level(spec.channel, dark if active else 1.0 - dark)
            self.sensors.poll_once()
        else:
            pin = self._pins.pin(spec.pin)
            high = active if spec.kind != "button" else not active  # a button pulls its pin low
            pin.drive_high() if high else pin.drive_low()
        return f"{sensor} {'active' if active else 'inactive'}"

    def status(self) -> dict:
        with self._reload_lock:  # a reload from the bus closes and reopens the banks read here
            return self._status()

    def _status(self) -> dict:
        outputs = {}
        for name, out in (("dmx", self.outputs.dmx), ("audio", self.outputs.audio), ("lights", self.lights),
                          ("sensors", self.sensors)):
            outputs[name] = out.status() if out is not None and hasattr(out, "status") else {"available": False,
                                                                                            "detail": "not fitted"}
        return outputs

    def health(self) -> tuple[str, str]:
        reasons = [self.problem] if self.problem else []
        reasons += [s["detail"] for s in self.status().values() if s.get("detail") and s["detail"] != "not fitted"]
        return ("degraded", "; ".join(reasons)) if reasons else ("ok", "")

    def publish_state(self, force: bool = False) -> None:
        state = self.engine.snapshot()
        state["outputs"] = self.status()
        state["sheet_version"] = self.sheet_version
        state["problem"] = self.problem
        state["simulated_sensors"] = self.simulated_gpio
        state["sensors"] = [{"name": n, "kind": spec.kind, "active": active}
                            for n, spec in self.engine.sheet.sensors.items()
                            for active in [bool(self.sensors and self.sensors.is_active(n))]]
        text = json.dumps(state, sort_keys=True, default=str)
        with self._state_lock:
            if text == self._last_state and not force:
                return
            self._last_state = text
        self.bus.publish(topics.state(self.kit, "cues"), state, retain=True)


def run(ctx) -> None:
    """``fieldkit run cues``."""
    service = CueService(ctx.config, ctx.db, ctx.bus, ctx.ledger, clock=RealClock(ctx.clock.time))
    service.start()
    announced = None
    try:
        while ctx.sleep(1.0):
            service.maintain()
            health = service.health()
            if health != announced:
                announced = health
                ctx.health(health[0], **({"reason": health[1]} if health[1] else {}))
    finally:
        service.stop()
