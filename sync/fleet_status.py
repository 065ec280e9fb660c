"""The kit's live state for HQ's fleet view, posted with every sync (``POST /api/v1/kits/<kit>/status``).

Version and architecture (so HQ can offer the right bundle), battery (the power feature's retained
state on the bus: features never import each other), backlog and lag (how far HQ is behind this kit),
whether the clock is trusted, the site mirror's state and the incidents not yet resolved (the lead
service's retained state; null when no lead service runs).
"""

from __future__ import annotations

import logging
import platform
import re
import threading
from datetime import UTC, datetime

from kit import topics

log = logging.getLogger("fieldkit.sync.fleet")


def machine() -> str:
    """This kit's architecture as bundles name it (aarch64, x86_64, armv7l...)."""
    arch = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(
        arch, re.sub(r"[^a-z0-9_]", "", arch)[:16] or "unknown"
    )


class LiveState:
    """What other features publish that the status carries; fed by the bus, read at each sync."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.battery_percent: float | None = None
        self.open_incidents: int | None = None

    def attach(self, bus, kit_id: str) -> None:
        bus.subscribe(topics.state(kit_id, "power"), self._on_power)
        bus.subscribe(topics.state(kit_id, "lead"), self._on_lead)

    def _on_lead(self, _topic: str, payload: dict) -> None:
        n = payload.get("open_incidents") if isinstance(payload, dict) else None
        with self._lock:
            self.open_incidents = n if isinstance(n, int) and not isinstance(n, bool) and n >= 0 else None

    def _on_power(self, _topic: str, payload: dict) -> None:
        battery = payload.get("battery") if isinstance(payload, dict) else None
        soc = battery.get("soc") if isinstance(battery, dict) else None
        with self._lock:
            # A stale or missing reading is sent as unknown, never as a made-up figure.
            ok = isinstance(soc, (int, float)) and not isinstance(soc, bool) and 0 <= soc <= 100
            self.battery_percent = float(soc) if ok else None


def mirror_word(db) -> str:
    """This kit's site mirror in a few words for HQ: none, ok, behind N, or held (a spare to restore)."""
    from sync.mirror import mirror_summary

    m = mirror_summary(db)
    if m["hold"]:
        return "held"
    if not m["mirrors"]:
        return "none"
    return "ok" if not m["behind"] else f"behind {min(int(m['behind']), 10**9)}"


def status(agent, live: LiveState | None) -> dict:
    """The status to post now, from the agent's view of its cursor and the kit's clock."""
    from kit import __version__
    from kit.clock import KitClock

    state = agent.state()
    backlog = int(state["backlog"])
    lag = 0
    if backlog:
        wall = agent.db.scalar(
            "SELECT wall_time FROM events WHERE seq > ? ORDER BY seq LIMIT 1", (state["cursor"],)
        )
        try:
            oldest = datetime.fromisoformat(str(wall).replace("Z", "+00:00"))
            oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
            lag = max(0, int((datetime.now(UTC) - oldest).total_seconds()))
        except ValueError:
            lag = None
    config = agent.config
    clock = KitClock(config.data_dir, config["kit.clock_assume_synced"])
    return {
        "version": __version__,
        "arch": machine(),
        "battery_percent": live.battery_percent if live else None,
        "backlog": backlog,
        "lag_seconds": lag,
        "mirror": mirror_word(agent.db),
        "open_incidents": live.open_incidents if live else None,  # the lead service's retained state
        "clock_trusted": bool(clock.status().synced),
        "clock_time": round(clock.time(), 1),
    }


def report_status(agent, client, stop=None) -> dict | None:
    """Post the status; when HQ offers a newer bundle, download it (resuming). Returns its announcement.

    A status HQ refuses (an HQ with stricter checks) is logged and the session goes on: the events are
    what matters. A download cut off raises SyncError, so the session is retried and the next resumes.
    """
    from sync.bundle_download import fetch
    from sync.client import BatchRejected

    try:
        offer = client.post_status(status(agent, agent.live))
    except BatchRejected as e:
        log.warning("event=status_refused status=%s error=%r", e.status, str(e))
        return None
    if not offer:
        return None
    version = str(offer.get("version"))[:40]

    def progress(done: int, total: int) -> None:
        agent.download = {"version": version, "done": done, "total": total}
        agent.publish_state(force=False)

    try:
        return fetch(client, offer, agent.config.kit_id, agent.config.data_dir, agent.bus, progress, stop)
    finally:
        agent.download = None
