"""Test helpers that ship with the kit: a real Mosquitto on a free port, free ports, waiting.

Used by the test suite and the benchmarks; nothing here fakes a protocol.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A free TCP port for a listener started a moment later, below the ephemeral range.

    The kernel's own pick (bind to port 0) comes from the range outgoing connections use too: between
    the pick and the listener's bind, any client socket of any process may take it ("Address already in
    use" for a broker or a web server under a busy test run). Below that range only another listener can.
    """
    low, _high = _ephemeral_range()
    top = min(low, 65536) - 1
    for _ in range(200):
        port = random.randint(max(1024, top - 12000), top)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # a crowded machine: fall back to the kernel's pick
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def mosquitto_binary() -> str:
    path = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if not path:
        raise RuntimeError("mosquitto is not installed: `make test` installs it (apt-get install mosquitto)")
    return path


class Mosquitto:
    """A private broker on loopback; ``extra_conf`` lines are appended (bridges, listeners)."""

    def __init__(self, port: int | None = None, extra_conf: str = "", workdir: Path | None = None):
        self.port = port or free_port()
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="fk-mosquitto-"))
        self.extra_conf = extra_conf
        self.proc: subprocess.Popen | None = None

    def write_conf(self) -> Path:
        conf = self.dir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            f"log_dest file {self.dir / 'mosquitto.log'}\n" + self.extra_conf
        )
        return conf

    def start(self, timeout: float = 10.0) -> Mosquitto:
        conf = self.write_conf()
        self.proc = subprocess.Popen([mosquitto_binary(), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(lambda: port_open("127.0.0.1", self.port) or self.proc.poll() is not None, timeout, what="mosquitto")
        if self.proc.poll() is not None:
            raise RuntimeError(f"mosquitto failed to start: {self.proc.stderr.read().decode(errors='replace')}")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def stop_process_group(proc: subprocess.Popen, grace: float = 20) -> None:
    """SIGINT (a clean stop, as Ctrl-C), then SIGKILL to the whole group if it has not ended in ``grace`` s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
