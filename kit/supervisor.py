"""``fieldkit up``: every service as a child process, as systemd would run them on the appliance.

Starts a private Mosquitto when none answers at the configured address, restarts a child that
dies (with backoff), prints the URL and how to sign in, and stops everything on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from kit.config import Config
from kit.db import DatabaseLock, all_migration_sets, apply_migrations
from kit.runners import service_names
from kit.secrets import Secrets
from kit.service import open_database
from kit.testing import mosquitto_binary, port_open, wait_for

log = logging.getLogger("fieldkit.supervisor")
MAX_BACKOFF_SECONDS = 30
HEALTHY_AFTER_SECONDS = 30  # a child that ran this long has its backoff reset


@dataclass
class Child:
    name: str
    proc: subprocess.Popen | None = None
    started: float = 0.0
    restarts: int = 0
    next_start: float = 0.0
    backoff: float = 1.0
    history: list[float] = field(default_factory=list)


def lan_address() -> str:
    """The address other devices reach us at (no packet is sent: UDP connect only picks a route)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"


class Supervisor:
    def __init__(self, config: Config, simulate: bool = False, only: list[str] | None = None):
        self.config = config
        self.simulate = simulate
        self.names = [n for n in service_names() if not only or n in only]
        self.children = {n: Child(n) for n in self.names}
        self.broker: subprocess.Popen | None = None
        self.stopping = False
        self.env = dict(os.environ)
        if simulate:
            self.env["FIELDKIT_KIT_SIMULATE"] = "1"

    # -- broker ----------------------------------------------------------------------------------
    def ensure_broker(self) -> None:
        host, port = self.config["mqtt.host"], self.config["mqtt.port"]
        if port_open(host, port, timeout=0.5):
            log.info("event=broker_found host=%s port=%s", host, port)
            return
        if not self.config["supervisor.start_broker"]:
            raise SystemExit(f"no MQTT broker at {host}:{port} and supervisor.start_broker is off")
        workdir = self.config.data_dir / "mosquitto"
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "mosquitto.conf"
        conf.write_text(
            f"# written by fieldkit up\nlistener {port} {host}\nallow_anonymous true\n"
            f"persistence true\npersistence_location {workdir}/\nlog_dest file {workdir}/mosquitto.log\n"
        )
        try:
            binary = mosquitto_binary()
        except RuntimeError as e:
            raise SystemExit(f"error: {e}") from None
        self.broker = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: port_open(host, port) or self.broker.poll() is not None, 10, what="mosquitto")
        except TimeoutError:
            pass
        if self.broker.poll() is not None or not port_open(host, port):
            err = self.broker.stderr.read().decode(errors="replace") if self.broker.stderr else ""
            raise SystemExit(f"error: could not start mosquitto on {host}:{port}: {err.strip()}")
        log.info("event=broker_started host=%s port=%s pid=%s", host, port, self.broker.pid)

    # -- children --------------------------------------------------------------------------------
    def start_child(self, child: Child) -> None:
        cmd = [sys.executable, "-m", "kit", "run", child.name]
        child.proc = subprocess.Popen(cmd, env=self.env, start_new_session=True)
        child.started = time.monotonic()
        log.info("event=child_started name=%s pid=%s", child.name, child.proc.pid)

    def reap(self) -> None:
        now = time.monotonic()
        for child in self.children.values():
            if child.proc is None:
                if now >= child.next_start and not self.stopping:
                    self.start_child(child)
                continue
            code = child.proc.poll()
            if code is None:
                if now - child.started > HEALTHY_AFTER_SECONDS:
                    child.backoff = 1.0
                continue
            child.restarts += 1
            child.proc = None
            child.next_start = now + child.backoff
            log.warning("event=child_exited name=%s code=%s restart_in=%.0fs restarts=%d",
                        child.name, code, child.backoff, child.restarts)
            child.backoff = min(child.backoff * 2, MAX_BACKOFF_SECONDS)

    def stop_all(self) -> None:
        self.stopping = True
        procs = [c.proc for c in self.children.values() if c.proc and c.proc.poll() is None]
        for p in procs:
            p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("event=child_killed pid=%s", p.pid)
                p.kill()
                p.wait()
        if self.broker and self.broker.poll() is None:
            self.broker.terminate()
            try:
                self.broker.wait(5)
            except subprocess.TimeoutExpired:
                self.broker.kill()

    # -- main ------------------------------------------------------------------------------------
    def prepare(self) -> None:
        lock = DatabaseLock(self.config.db_path)
        lock.exclusive(wait_seconds=10)
        try:
            apply_migrations(open_database(self.config), all_migration_sets())
        finally:
            lock.release()
        if not Secrets(self.config.secrets_dir).exists():
            raise SystemExit("error: this kit has no PINs yet; run `fieldkit init` first")

    def banner(self) -> str:
        port = self.config["web.port"]
        host = self.config["web.host"]
        shown = self.config["web.public_url"] or (
            f"http://{'127.0.0.1' if host in ('0.0.0.0', '127.0.0.1', '::') else host}:{port}/")
        lines = [
            "",
            f"  Field Kit '{self.config.kit_id}' is starting ({'simulated hardware' if self.simulate else 'real hardware'})",
            f"  Open {shown}",
        ]
        if host in ("0.0.0.0", "::"):
            lines.append(f"  (phones on this network: http://{lan_address()}:{port}/)")
        lead = Secrets(self.config.secrets_dir).initial_lead_pin()
        lines.append(f"  Sign in with a staff PIN{f' (lead PIN: {lead})' if lead else ''}; PINs were printed by `fieldkit init`.")
        lines.append("  Stop with Ctrl-C.")
        return "\n".join(lines) + "\n"

    def run(self) -> int:
        self.prepare()

        def on_signal(signum, _frame) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.ensure_broker()
        for child in self.children.values():
            self.start_child(child)
        print(self.banner(), flush=True)
        try:
            while not self.stopping:
                self.reap()
                time.sleep(0.2)
        finally:
            log.info("event=stopping children=%d", len(self.children))
            self.stop_all()
        return 0

