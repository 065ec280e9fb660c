"""``fieldkit up``: every service as a child process, as systemd would run them on the appliance.

One child per process of the kit: a service group of ``service.groups`` is one child
(``fieldkit run status power cues sync lead``, logged as ``name=status+power+cues+sync+lead``), every other
service a child of its own.

On a development machine (``FIELDKIT_HOME`` set, no ``mqtt.port`` given) it starts a private
Mosquitto on a free port, so a demo never joins another kit's broker, and records that port in
``<data>/broker.json`` for the CLI. Otherwise it uses the configured broker, starting one there when
none answers. It restarts the private broker and any child that dies (with backoff), prints the URL
and how to sign in, and stops everything on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from kit.appliance.broker import MESSAGE_SIZE_LIMIT
from kit.config import Config, ConfigError
from kit.files import write_durably
from kit.testing import free_port, mosquitto_binary, port_open, wait_for
from kit.up_record import BROKER_FILE, process_identity

log = logging.getLogger("fieldkit.supervisor")
MAX_BACKOFF_SECONDS = 30
HEALTHY_AFTER_SECONDS = 30  # a child that ran this long has its backoff reset


def broker_conf(host: str, port: int, workdir) -> str:
    # Started as root, Mosquitto would drop to its own user, who cannot enter a private FIELDKIT_HOME
    # (0750) to keep its log and persistence: the private broker stays with whoever ran `fieldkit up`.
    user = "user root\n" if os.geteuid() == 0 else ""
    return (f"# written by fieldkit up\n{user}listener {port} {host}\nallow_anonymous true\n"
            f"message_size_limit {MESSAGE_SIZE_LIMIT}\n"
            f"persistence true\npersistence_location {workdir}/\nautosave_interval 30\n"
            f"log_dest file {workdir}/mosquitto.log\n")


@dataclass
class Child:
    name: str  # the services it runs, joined by "+"
    members: list[str] = field(default_factory=list)
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
    def __init__(self, config: Config, simulate: bool = False, only: list[str] | None = None,
                 existing_broker: bool = False):
        self.config = config
        self.simulate = simulate
        self.existing_broker = existing_broker
        self.broker_host, self.broker_port = config["mqtt.host"], config["mqtt.port"]
        self.broker_note = ""
        self.broker_starts = 0
        self.broker_retry_at, self.broker_backoff = 0.0, 1.0
        self.only = list(only or [])
        self.names: list[str] = []
        self.children: dict[str, Child] = {}  # filled by prepare(): one per process of the kit
        self.lead_pin: str | None = None
        self.broker: subprocess.Popen | None = None
        self.stopping = False
        self.reexec = False  # SIGHUP: stop the services and run again from the release `current` names
        self.journal_seen = 0.0
        self.pickup: subprocess.Popen | None = None
        self.bundles_seen: list = []
        self.pickup_due = 0.0
        self.env = dict(os.environ)
        # glibc gives each thread that allocates under contention an arena of its own (up to 8 per core), kept
        # for the process's life; two are plenty for Python's GIL-bound threads (an operator's value wins)
        self.env.setdefault("MALLOC_ARENA_MAX", "2")
        if simulate:
            self.env["FIELDKIT_KIT_SIMULATE"] = "1"

    # -- broker ----------------------------------------------------------------------------------
    def private_wanted(self) -> bool:
        """A development machine gets a broker of its own unless told which one to use."""
        told = self.existing_broker or self.config.sources.get("mqtt.port") != "default"
        return self.config.paths.home is not None and not told

    def ensure_broker(self) -> None:
        host, port = self.config["mqtt.host"], self.config["mqtt.port"]
        if self.private_wanted():
            port = free_port()
        elif port_open(host, port, timeout=0.5):
            log.info("event=broker_found host=%s port=%s", host, port)
            self._use_broker(host, port, f"the existing broker at {host}:{port}")
            return
        elif self.existing_broker:
            raise SystemExit(f"error: no MQTT broker answers at {host}:{port} (--existing-broker was given)")
        elif not self.config["supervisor.start_broker"]:
            raise SystemExit(f"no MQTT broker at {host}:{port} and supervisor.start_broker is off")
        self.start_broker(host, port)
        self._use_broker(host, port, f"a private broker on {host}:{port} (started by fieldkit up)")

    def _use_broker(self, host: str, port: int, note: str) -> None:
        self.broker_host, self.broker_port, self.broker_note = host, port, note
        self.env["FIELDKIT_MQTT_HOST"], self.env["FIELDKIT_MQTT_PORT"] = host, str(port)
        write_durably(self.config.data_dir / BROKER_FILE,
                      json.dumps({"host": host, "port": port, "pid": os.getpid(), "started": process_identity(os.getpid()),
                                  "private": self.broker is not None, "services": self.names}),
                      mode=0o640)

    def start_broker(self, host: str, port: int) -> None:
        workdir = self.config.data_dir / "mosquitto"
        workdir.mkdir(parents=True, exist_ok=True, mode=0o750)
        conf = workdir / "mosquitto.conf"
        conf.write_text(broker_conf(host, port, workdir))
        try:
            binary = mosquitto_binary()
        except RuntimeError as e:
            raise SystemExit(f"error: {e}") from None
        self.broker = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                       start_new_session=True)
        self.broker_starts += 1
        try:
            wait_for(lambda: port_open(host, port) or self.broker.poll() is not None, 10, interval=0.02, what="mosquitto")
        except TimeoutError:
            pass
        if self.broker.poll() is not None or not port_open(host, port):
            err = self.broker.stderr.read().decode(errors="replace") if self.broker.stderr else ""
            raise SystemExit(f"error: could not start mosquitto on {host}:{port}: {err.strip()}")
        log.info("event=broker_started host=%s port=%s pid=%s", host, port, self.broker.pid)

    def watch_broker(self) -> None:
        """Our private broker died: start it again on the same port, the services reconnect to it."""
        if self.broker is None or self.stopping or self.broker.poll() is None:
            return
        if time.monotonic() < self.broker_retry_at:
            return
        log.warning("event=broker_exited code=%s action=restart port=%s", self.broker.returncode, self.broker_port)
        try:
            self.start_broker(self.broker_host, self.broker_port)
            self.broker_backoff = 1.0
        except SystemExit as e:
            log.error("event=broker_restart_failed port=%s reason=%s retry_in=%.0fs", self.broker_port, e,
                      self.broker_backoff)
            self.broker_retry_at = time.monotonic() + self.broker_backoff
            self.broker_backoff = min(self.broker_backoff * 2, MAX_BACKOFF_SECONDS)

    # -- children --------------------------------------------------------------------------------
    def start_child(self, child: Child) -> None:
        cmd = [sys.executable, "-m", "kit", "run", *child.members]
        child.proc = subprocess.Popen(cmd, env={**self.env, "FIELDKIT_SUPERVISOR_PID": str(os.getpid())},
                                      start_new_session=True)
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
        (self.config.data_dir / BROKER_FILE).unlink(missing_ok=True)
        if self.broker and self.broker.poll() is None:
            self.broker.terminate()
            try:
                self.broker.wait(5)
            except subprocess.TimeoutExpired:
                self.broker.kill()

    # -- main ------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Migrate, check the PINs, secure the data dir and work out the kit's processes in a short-lived
        child (prepare_kit): the supervisor, which runs for the whole event, never loads the features, the
        database layer or hashlib's OpenSSL (~9 MB of a 512 MB Pi)."""
        cmd = [sys.executable, "-m", "kit.supervisor", "--prepare", *(f"--only={n}" for n in self.only)]
        done = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise SystemExit(done.stderr.strip() or f"error: preparing the kit failed (exit {done.returncode})")
        prepared = json.loads(done.stdout.strip().splitlines()[-1])
        if prepared.get("reexec"):  # an interrupted update was rolled back: run the release it went back to
            self.exec_current()
        self.names = [n for members in prepared["plan"] for n in members]
        self.children = {"+".join(m): Child("+".join(m), m) for m in prepared["plan"]}
        self.lead_pin = prepared["lead_pin"]

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
        lead = self.lead_pin
        lines.append(f"  Sign in with a staff PIN{f' (lead PIN: {lead})' if lead else ''}; PINs were printed by `fieldkit init`.")
        if self.broker_note:
            lines.append(f"  MQTT: {self.broker_note}")
        lines.append("  Stop with Ctrl-C.")
        return "\n".join(lines) + "\n"

    # -- updates (kit/update): re-execute from the release slot `current` names -------------------
    def exec_current(self) -> None:
        from kit.update.slots import clean_env, current_slot

        os.environ.setdefault("FIELDKIT_UP_PYTHON", sys.executable)  # the install that ran before any slot
        slot = current_slot(self.config)
        python = str(slot / "bin" / "python") if slot else os.environ["FIELDKIT_UP_PYTHON"]
        args = ["--simulate"] * self.simulate + ["--existing-broker"] * self.existing_broker
        args += [a for name in self.only for a in ("--only", name)]
        log.info("event=supervisor_reexec python=%s", python)
        sys.stdout.flush()
        os.execve(python, [python, "-m", "kit", "up", *args], clean_env() if slot else dict(os.environ))

    def watch_bundles(self) -> None:
        """A bundle on the USB stick, uploaded or from HQ, or a lead's choice: `fieldkit update pickup` decides.

        Only directory listings here; the pickup (a short-lived child, detached so it outlives a restart it
        causes) verifies and applies, and remembers what it has refused."""
        if self.pickup is not None and self.pickup.poll() is None:
            return
        data = self.config.data_dir / "updates"
        marks = []
        for folder in (self.config["update.path"], data / "incoming", data / "uploads"):
            try:
                marks += [(e.name, e.stat().st_mtime_ns) for e in os.scandir(folder) if e.name.endswith(".fkb")]
            except OSError:
                continue
        try:
            marks.append(("pending", (data / "pending.json").stat().st_mtime_ns))
        except OSError:
            pass
        if not marks or (marks == self.bundles_seen and time.monotonic() < self.pickup_due):
            return
        self.bundles_seen, self.pickup_due = marks, time.monotonic() + 300  # again later: the kit may be idle by then
        self.pickup = subprocess.Popen([sys.executable, "-m", "kit", "update", "pickup"], env=self.env,
                                       start_new_session=True, stdout=subprocess.DEVNULL)

    def watch_update(self) -> None:
        """An update journal whose updater is gone (killed): restart, so prepare finishes or undoes it."""
        from kit.startid import is_running

        path = self.config.data_dir / "updates" / "journal.json"
        try:
            mtime = path.stat().st_mtime
            if mtime == self.journal_seen:
                return
            j = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        if not is_running(j.get("updater")):
            self.journal_seen = mtime
            log.warning("event=update_interrupted id=%s step=%s action=restart", j.get("id"), j.get("step"))
            self.reexec = self.stopping = True

    def run(self) -> int:
        self.prepare()

        def on_signal(signum, _frame) -> None:
            self.stopping = True
            self.reexec = signum == signal.SIGHUP

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGHUP, on_signal)
        self.ensure_broker()
        for child in self.children.values():
            self.start_child(child)
        print(self.banner(), flush=True)
        ticks = 0
        try:
            while not self.stopping:
                self.watch_broker()
                self.reap()
                ticks += 1
                if ticks % 10 == 0:
                    self.watch_update()
                if ticks % 50 == 25:
                    self.watch_bundles()
                time.sleep(0.2)
        finally:
            log.info("event=stopping children=%d", len(self.children))
            self.stop_all()
        if self.reexec:
            self.exec_current()
        return 0



def prepare_kit(config: Config, only: list[str]) -> dict:
    """What `fieldkit up` does before starting anything: migrations, PINs present, private data dir, the plan."""
    from kit.db import Database, DatabaseLock, apply_migrations
    from kit.features import all_migration_sets
    from kit.initkit import secure_data_dir
    from kit.ledger_hold import hold_until_the_mirror_answers
    from kit.runners import process_plan
    from kit.secrets import Secrets
    from kit.update.apply import recover

    if recover(config):  # an interrupted update went back to the old release: that one migrates, not us
        return {"reexec": True}
    lock = DatabaseLock(config.db_path)
    lock.exclusive(wait_seconds=10)
    try:
        db = Database(config.db_path, config["db.busy_timeout_ms"])
        apply_migrations(db, all_migration_sets())
        with db.transaction() as conn:
            hold_until_the_mirror_answers(config, conn)
        db.close()
    finally:
        lock.release()
    secrets = Secrets(config.secrets_dir)
    if not secrets.exists():
        raise SystemExit("error: this kit has no PINs yet; run `fieldkit init` first")
    secure_data_dir(config.data_dir)
    return {"plan": process_plan(config, only), "lead_pin": secrets.initial_lead_pin()}


UP_USAGE = """usage: fieldkit up [--simulate] [--only SERVICE ...] [--existing-broker]
(`fieldkit up --help` says more)"""


def up_command(args: list[str]) -> int:
    """`fieldkit up` without click (the supervisor runs all event long: kit/__main__.py sends it here)."""
    from kit.config import load_config
    from kit.logs import setup_logging

    simulate = existing = False
    only: list[str] = []
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg == "--simulate":
            simulate = True
        elif arg == "--existing-broker":
            existing = True
        elif arg == "--only" and rest:
            only.append(rest.pop(0))
        elif arg.startswith("--only="):
            only.append(arg.split("=", 1)[1])
        else:
            print(f"{UP_USAGE}\nerror: unexpected {arg!r}", file=sys.stderr)
            return 2
    try:
        config = load_config()  # not a recorded broker: this command decides which broker to use
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    setup_logging(config["service.log_level"], "up")
    try:
        return Supervisor(config, simulate=simulate, only=only, existing_broker=existing).run()
    except OSError as e:
        from kit.runners import error_line

        print(error_line(e), file=sys.stderr)
        return 1


if __name__ == "__main__" and sys.argv[1:2] == ["--prepare"]:
    from kit.config import load_config

    try:
        result = prepare_kit(load_config(), [a.split("=", 1)[1] for a in sys.argv[2:] if a.startswith("--only=")])
    except ConfigError as e:
        sys.exit(f"error: {e}")
    print(json.dumps(result))
