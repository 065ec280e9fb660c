"""The "Go online" switch: one at a time, the sync agent asked over the bus, progress on the bus.

Used by the dashboard (kit/appliance/web.py) and ``fieldkit appliance online``. The sync agent is
asked with ``fieldkit/<kit>/sync/cmd/now`` carrying a request id; it answers on
``fieldkit/<kit>/sync/event/<name>`` with the same id when that sync has finished (a reply marked
``"in_progress": true`` is progress, not the end). Progress of the switch itself is retained on
``fieldkit/<kit>/appliance/state`` so every open dashboard shows it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable

from kit import topics
from kit.appliance.network import NetworkError, Nmcli, OnlineResult, go_online
from kit.config import Config

log = logging.getLogger("fieldkit.appliance.online")


def appliance_state_topic(kit_id: str) -> str:
    return topics.state(kit_id, "appliance")


class SyncRequest:
    """A ``run_sync(timeout)`` that asks the sync agent to sync now and waits for its answer.

    True when the agent answered that the sync went through; ``last_reply`` keeps its answer (with
    the agent's ``error`` when it could not reach HQ).
    """

    def __init__(self, bus, kit_id: str):
        self.bus, self.kit_id = bus, kit_id
        self.last_reply: dict | None = None

    def __call__(self, timeout: float) -> bool:
        request_id = uuid.uuid4().hex
        done = threading.Event()
        self.last_reply = None

        def on_reply(_topic: str, payload: dict) -> None:
            if payload.get("id") == request_id and not payload.get("in_progress"):
                self.last_reply = payload
                done.set()

        self.bus.subscribe(f"{topics.ROOT}/{self.kit_id}/sync/event/#", on_reply, qos=1)
        self.bus.publish(topics.cmd(self.kit_id, *topics.SYNC_NOW), {"id": request_id, "source": "appliance.online"},
                         qos=1)
        log.info("event=sync_requested id=%s timeout=%.0f", request_id, timeout)
        if not done.wait(timeout):
            return False
        return self.last_reply.get("ok", True) is not False

    def failure(self) -> str:
        """Why the last sync did not go through, in the agent's words."""
        if self.last_reply is None:
            return "the sync agent did not answer in time; it carries on the next time the kit is online"
        return str(self.last_reply.get("error") or "the sync agent reported a failure")


class OnlineSwitch:
    """Runs one "Go online" at a time in a background thread; ``state`` says where it is."""

    def __init__(self, config: Config, bus, nm: Nmcli | None = None,
                 run_sync: Callable[[float], bool] | None = None):
        self.config = config
        self.bus = bus
        self.nm = nm or Nmcli()
        self.run_sync = run_sync or SyncRequest(bus, config.kit_id)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.state: dict = {"state": "idle", "detail": "", "at": time.time()}
        self.last_result: OnlineResult | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def report(self, state: str, detail: str) -> None:
        self.state = {"state": state, "detail": detail, "at": time.time()}
        log.info("event=online_state state=%s detail=%r", state, detail)
        try:
            self.bus.publish(appliance_state_topic(self.config.kit_id), self.state, retain=True, qos=1)
        except Exception as e:  # the dashboard still polls self.state; the bus may be restarting
            log.warning("event=online_state_not_published error=%s", e)

    def run(self) -> OnlineResult | None:
        """Go online now, in this thread. Never raises: the outcome is in ``state``."""
        try:
            result = go_online(
                self.nm,
                uplink_ssid=self.config["network.uplink_ssid"],
                run_sync=self.run_sync,
                interface=self.config["network.hotspot_interface"],
                max_seconds=self.config["network.online_minutes"] * 60,
                report=self.report,
            )
        except NetworkError as e:
            self.report("error", str(e))
            return None
        self.last_result = result
        if result.synced:
            outcome = "sync finished"
        else:
            why = self.run_sync.failure() if hasattr(self.run_sync, "failure") else "no answer in time"
            outcome = f"the sync did not go through: {why}"
        self.report("done", f"{outcome} (via {result.via})")
        return result

    def start(self) -> bool:
        """Start in the background; False when a switch is already running."""
        with self._lock:
            if self.busy:
                return False
            self._thread = threading.Thread(target=self.run, name="go-online", daemon=True)
            self._thread.start()
            return True

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
