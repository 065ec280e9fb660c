"""The checkin service: owns the door's scan sources and feedback, shares check-ins with the site.

A code from any source is validated and recorded on the source's own thread (one short SQLite
transaction), then the lights/buzzer are signalled and the verdict published. The main loop sends
this kit's check-ins to the other doors, asks them for what it missed, publishes camera preview frames
and keeps the service's health honest about missing devices.
"""

from __future__ import annotations

import base64
import logging
import threading
import time

from checkin.events import DOUBLE, PREVIEW, SIMULATE, publish_scanned
from checkin.peers import checkin_channel
from checkin.recorder import ScanRecorder
from checkin.validate import DoorRules, KeyRing
from checkin.verify import answer_verify
from kit import payloads, topics
from kit.payloads import text
from kit.service import ServiceContext
from kit.sitelink import SiteLink

log = logging.getLogger("fieldkit.checkin.service")
PREVIEW_INTERVAL = 0.5


class Door:
    """What the service holds: rules, keys, devices, the site link."""

    def __init__(self, ctx: ServiceContext, sources: list, feedback):
        self.ctx = ctx
        self.rules = DoorRules.from_config(ctx.config)
        self.keyring = KeyRing()
        self.recorder = ScanRecorder(ctx.db, ctx.ledger, self.rules, self.keyring)
        self.sources = sources
        self.feedback = feedback
        self.link: SiteLink | None = None
        if ctx.config["checkin.share"]:
            self.link = SiteLink(ctx.db, ctx.ledger, ctx.bus, ctx.config.site, self.rules.kit)
            self.link.register(checkin_channel(self.rules, catchup_seconds=float(ctx.config["checkin.catchup_seconds"]),
                                               on_double=self.on_double, on_stored=self.on_peer_event))
        self._lock = threading.Lock()

    def on_code(self, payload: str, source: str) -> dict | None:
        try:
            result = self.recorder.record(payload, source=source)
        except Exception:
            # A database problem must not kill the source thread; the person is told to scan again.
            log.exception("event=scan_failed source=%s", source)
            self.feedback.signal("red")
            return None
        self.feedback.signal(result["colour"])
        publish_scanned(self.ctx.bus, self.ctx.db, self.rules, result)
        if self.link:
            self.link.wake.set()
        return result

    def on_double(self, info: dict) -> None:
        self.ctx.bus.publish(topics.event(self.rules.kit, "checkin", DOUBLE), info, qos=1)
        self.feedback.signal("amber")

    def on_peer_event(self, msg: dict) -> None:
        from checkin.peers import guest_name

        p = msg.get("payload", {})
        # The peer's event names the ticket, not the person: the name is this kit's own list's.
        name = p.get("name") or guest_name(self.ctx.db.conn, str(p.get("ticket_key") or ""))
        self.ctx.bus.publish(topics.event(self.rules.kit, "checkin", "peer"),
                             {"origin_kit": msg.get("origin_kit"), "type": msg.get("type"), "verdict": p.get("verdict"),
                              "door": p.get("door"), "name": name, "method": p.get("method")})

    def on_document(self, _topic: str, msg: dict) -> None:
        """An attendee list, key set or revocation list the sync agent downloaded but did not apply."""
        from pathlib import Path

        from kit.documents import DocumentError, import_document

        kind = msg.get("kind")
        if not isinstance(kind, str) or not kind.startswith("checkin.") or msg.get("applied"):
            return
        path = Path(str(msg.get("path") or ""))
        try:
            path = payloads.downloaded_document(self.ctx.config, msg)  # never any file the bus names
            _, report = import_document(self.ctx.config, self.ctx.db, kind, path.read_bytes(), path.name, source="hq",
                                        source_version=str(msg.get("source_version") or ""))
        except ValueError as e:
            payloads.refuse(_topic, msg, str(e))
            return
        except (OSError, DocumentError) as e:
            log.warning("event=document_refused kind=%s path=%s reason=%r", kind, path, str(e))
            return
        log.info("event=document_applied kind=%s %s", kind, report.summary().replace(", ", " "))

    def on_simulate(self, _topic: str, msg: dict) -> None:
        payload, wanted = msg.get("payload"), msg.get("source")
        simulated = [s for s in self.sources if hasattr(s, "show")]
        chosen = next((s for s in simulated if s.name == wanted), simulated[0] if simulated else None)
        reply = {"id": msg.get("id"), "ok": False}
        if not isinstance(payload, str) or len(payload) > 4096:
            reply["error"] = "payload must be text up to 4096 characters"
        elif chosen is None:
            reply["error"] = "no simulated scan source: start the kit with --simulate"
        else:
            chosen.show(payload)
            reply.update(ok=True, source=chosen.name)
        self.ctx.bus.publish(topics.event(self.rules.kit, "checkin", "simulated"), reply)

    def health(self) -> tuple[str, str]:
        problems = [s.status() for s in self.sources if s.status() not in ("ok", "not started")]
        if self.feedback.status() != "ok":
            problems.append(self.feedback.status())
        if not self.sources:
            problems.append("No camera or scanner configured — admit by name search only")
        return ("degraded", "; ".join(problems)) if problems else ("ok", "")

    def publish_preview(self) -> None:
        for source in self.sources:
            jpeg = source.preview_jpeg() if hasattr(source, "preview_jpeg") else None
            if jpeg:
                self.ctx.bus.publish(f"{topics.ROOT}/{self.rules.kit}/checkin/{PREVIEW}",
                                     {"source": source.name, "jpeg": base64.b64encode(jpeg).decode()})


def open_devices(config) -> tuple[list, object, list[str]]:
    """Scan sources and feedback as configured; a missing device becomes a health problem, not a crash."""
    from drivers.base import DeviceUnavailable
    from drivers.feedback import open_door_feedback
    from drivers.scanner import open_camera_source, open_hid_source, open_serial_source

    sources, problems = [], []
    for opener in (open_camera_source, open_serial_source, open_hid_source):
        try:
            source = opener(config)
        except DeviceUnavailable as e:
            problems.append(str(e))
            continue
        if source is not None:
            sources.append(source)
    return sources, open_door_feedback(config), problems


def run(ctx: ServiceContext) -> None:
    sources, feedback, problems = open_devices(ctx.config)
    door = Door(ctx, sources, feedback)
    simulated = topics.event(door.rules.kit, "checkin", "simulated")
    ctx.bus.subscribe(topics.cmd(door.rules.kit, "checkin", SIMULATE),
                      payloads.checked({"payload": text(4096, required=True)}, door.on_simulate,
                                       lambda _t, answer: ctx.bus.publish(simulated, answer)))
    verified = topics.event(door.rules.kit, *topics.CHECKIN_VERIFY)
    ctx.bus.subscribe(topics.cmd(door.rules.kit, *topics.CHECKIN_VERIFY),
                      payloads.checked({"code": text(4096, required=True), "id": text(80)},
                                       lambda _t, msg: answer_verify(ctx, door.keyring, msg),
                                       lambda _t, answer: ctx.bus.publish(verified, answer)), qos=1)
    ctx.bus.subscribe(topics.event(door.rules.kit, *topics.SYNC_DOCUMENT),
                      payloads.checked(payloads.DOCUMENT_EVENT, door.on_document), qos=1)
    if door.link:
        door.link.start()
    for source in sources:
        source.start(door.on_code)
    ctx.door = door  # type: ignore[attr-defined]  # tests and the bench reach the running door through ctx
    last_preview = 0.0
    last_health: tuple[str, str] | None = None
    log.info("event=checkin_started door=%s sources=%s share=%s", door.rules.door, [s.name for s in sources],
             bool(door.link))
    try:
        while not ctx.stopping.is_set():
            ctx.beat()
            now = time.monotonic()
            if door.link:
                door.link.pump()  # a busy database defers sharing to the next turn: the ledger keeps it
                door.link.wait(0.1)
            else:
                ctx.stopping.wait(0.1)
            if ctx.config["checkin.preview"] and now - last_preview >= PREVIEW_INTERVAL:
                door.publish_preview()
                last_preview = now
            state = door.health()
            if problems:
                state = ("degraded", "; ".join(problems + ([state[1]] if state[1] else [])))
            if state != last_health and ctx.bus.is_connected:
                if state[1]:
                    ctx.health(state[0], reason=state[1])
                else:
                    ctx.health(state[0])
                last_health = state
    finally:
        for source in sources:
            source.stop()
        door.recorder.close()
        feedback.close()
