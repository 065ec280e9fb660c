"""Shared fixtures: a real Mosquitto, a fresh FIELDKIT_HOME, the kit's database and bus, a running
simulated kit (`kit_factory`, `web_kit`) and Debian's chromium through Playwright (`browser`, `page`, `sign_in`).

Feature tests build on these; nothing here fakes a broker, a database or a clock source.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kit.testing import Mosquitto, free_port, stop_process_group, wait_for

os.environ.setdefault("ESCPOS_CAPABILITIES_PICKLE_DIR", str(Path.home() / ".cache" / "fieldkit-escpos"))

try:  # property tests check results, not speed: a loaded CI machine must not fail them on hypothesis's 200 ms deadline
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("fieldkit", deadline=None)
    _hypothesis_settings.load_profile("fieldkit")
except ImportError:
    pass


_SESSION_START = [0.0]


def pytest_sessionstart(session):
    _SESSION_START[0] = time.time()


def pytest_terminal_summary(terminalreporter):
    """The screen tests (tests/browser) keep a screenshot of every page and size: say where, once."""
    shots = Path(os.environ.get("FIELDKIT_SCREENSHOTS") or Path(__file__).parents[1] / "build" / "screenshots")
    counts = shots / "axe-counts.jsonl"
    if counts.exists() and counts.stat().st_mtime >= _SESSION_START[0]:
        terminalreporter.write_line(f"screenshots of every page and size, and axe-core counts: {shots}")


class ServiceThread:
    """A feature's real service loop on a thread, with its own context and bus connection (as `fieldkit run`)."""

    def __init__(self, name: str, config, run, ready: str | None = None):
        from kit.service import make_context

        self.config = config
        self.ctx = make_context(name, config)
        assert self.ctx.bus.start(wait=5), f"the {name} service's bus did not connect"
        self.thread = threading.Thread(target=run, args=(self.ctx,), daemon=True)
        self.thread.start()
        if ready:  # the attribute the service sets on its context once it runs
            wait_for(lambda: hasattr(self.ctx, ready), 10, what=f"{name} service start")

    def stop(self) -> None:
        if self.ctx.stopping.is_set():
            return
        self.ctx.stopping.set()
        self.thread.join(10)
        self.ctx.bus.stop()
        self.ctx.db.close()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory):
    broker = Mosquitto(workdir=tmp_path_factory.mktemp("mosquitto")).start()
    yield broker
    broker.stop()


@pytest.fixture
def kit_env(tmp_path, mosquitto, monkeypatch):
    """A fresh FIELDKIT_HOME (initialised: settings, database, PINs) wired to the test broker."""
    home = tmp_path / "kit"
    env = {
        "FIELDKIT_HOME": str(home),
        "FIELDKIT_MQTT_PORT": str(mosquitto.port),
        "FIELDKIT_KIT_SIMULATE": "1",
        "FIELDKIT_KIT_CLOCK_ASSUME_SYNCED": "1",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from kit.initkit import init_kit

    pins = init_kit(kit_id="test1", site="testsite", demo=False, force=False, echo=lambda *_: None)
    return {"home": home, "env": {**os.environ, **env}, "pins": pins}


@pytest.fixture
def config(kit_env):
    from kit.config import load_config

    return load_config()


@pytest.fixture
def db(config):
    from kit.service import open_database

    database = open_database(config)
    yield database
    database.close()


@pytest.fixture
def ctx(config):
    """A ServiceContext with a connected bus, as a feature's loop gets it."""
    from kit.service import make_context

    context = make_context("test", config)
    assert context.bus.start(wait=5), "bus did not connect to the test broker"
    yield context
    context.stopping.set()
    context.bus.stop()
    context.db.close()


class Recorder:
    """Collects JSON messages from the broker for assertions."""

    def __init__(self):
        self.messages: list[tuple[str, dict]] = []
        self.lock = threading.Lock()

    def __call__(self, topic: str, payload: dict) -> None:
        with self.lock:
            self.messages.append((topic, payload))

    def on(self, topic: str) -> list[dict]:
        with self.lock:
            return [p for t, p in self.messages if t == topic]

    def wait(self, predicate, timeout: float = 5.0, what: str = "message"):
        return wait_for(lambda: predicate(list(self.messages)), timeout, what=what)


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def listen(config, recorder):
    """listen(pattern) subscribes a Recorder on a separate bus client and returns it."""
    from kit.bus import Bus

    bus = Bus.from_config(config, f"listener{os.getpid()}", will=False)
    assert bus.start(wait=5)

    def subscribe(pattern: str) -> Recorder:
        bus.subscribe(pattern, recorder)
        # The broker handles SUBSCRIBEs in order: once a probe subscribed after ours echoes back,
        # ours is active too, and the test cannot miss a message published after this returns.
        probe = f"fieldkit/test-probe/{os.getpid()}/{id(recorder)}/{len(recorder.messages)}"
        seen = threading.Event()
        bus.subscribe(probe, lambda _t, _p: seen.set())
        wait_for(lambda: (bus.publish(probe, {"probe": 1}), seen.wait(0.2))[1], 5, what="subscription active")
        return recorder

    yield subscribe
    bus.stop(clean=False)


# --- a running kit and a real browser -------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]


@dataclass
class RunningKit:
    home: Path
    url: str
    env: dict
    pins: dict
    proc: subprocess.Popen
    log_path: Path
    services: list[str] = field(default_factory=list)

    def health(self) -> dict:
        with urllib.request.urlopen(self.url + "api/v1/health", timeout=2) as r:
            return json.loads(r.read())

    def wait_healthy(self, services: list[str], timeout: float = 30) -> dict:
        def ready():
            try:
                h = self.health()
            except OSError:
                return None
            return h if all(h["services"].get(s) == "ok" for s in services) else None

        try:
            return wait_for(ready, timeout, 0.2, what=f"services {services} healthy")
        except TimeoutError:
            raise AssertionError(f"kit not healthy; log:\n{self.log_path.read_text()[-4000:]}") from None

    def fieldkit(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "kit", *args], env=self.env, capture_output=True, text=True,
                              timeout=60, check=check)

    def stop(self) -> None:
        stop_process_group(self.proc)


def start_kit(tmp_path: Path, mosquitto, services: list[str] | None, extra_env: dict | None = None,
              demo: bool = True) -> RunningKit:
    """Init a kit (with demo data) and run `fieldkit up --simulate` for ``services`` (None: all of them)."""
    home = tmp_path / "kit"
    port = free_port()
    env = {**os.environ, "FIELDKIT_HOME": str(home), "FIELDKIT_MQTT_PORT": str(mosquitto.port),
           "FIELDKIT_WEB_PORT": str(port), "FIELDKIT_WEB_HOST": "127.0.0.1", "FIELDKIT_KIT_SIMULATE": "1",
           **(extra_env or {})}
    kit_id = f"e2e{port}"
    init = subprocess.run([sys.executable, "-m", "kit", "init", "--kit-id", kit_id, "--site", "e2e"]
                          + (["--demo"] if demo else []), env=env, capture_output=True, text=True, timeout=120)
    assert init.returncode == 0, init.stderr
    pins = {}
    for line in init.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("door", "merch", "lead"):
            pins[parts[0]] = parts[1]
    log_path = tmp_path / "up.log"
    if services is None:
        from kit.runners import service_names

        services = service_names()
    args = [sys.executable, "-m", "kit", "up", "--simulate"] + [a for s in services for a in ("--only", s)]
    proc = subprocess.Popen(args, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    kit = RunningKit(home, f"http://127.0.0.1:{port}/", env, pins, proc, log_path, services)
    try:
        kit.wait_healthy([s for s in services if s != "status"])
    except BaseException:
        kit.stop()  # a kit that never became healthy must not outlive its test
        raise
    return kit


@pytest.fixture
def kit_factory(tmp_path, mosquitto):
    """kit_factory(["web", "status", "pos"]) starts a simulated kit with those services (no list: all)."""
    started: list[RunningKit] = []

    def factory(services: list[str] | None = None, **kw) -> RunningKit:
        kit = start_kit(tmp_path / f"k{len(started)}", mosquitto, services, **kw)
        started.append(kit)
        return kit

    yield factory
    for kit in started:
        kit.stop()


@pytest.fixture(scope="module")
def module_kit_factory(tmp_path_factory, mosquitto):
    """kit_factory for a whole test module: one kit shared by the module's tests (they must not spoil it)."""
    started: list[RunningKit] = []

    def factory(services: list[str] | None = None, **kw) -> RunningKit:
        kit = start_kit(tmp_path_factory.mktemp("mkit"), mosquitto, services, **kw)
        started.append(kit)
        return kit

    yield factory
    for kit in started:
        kit.stop()


@pytest.fixture
def web_kit(kit_factory):
    """A kit running the web server and the status service (simulated hardware, demo data)."""
    return kit_factory(["web", "status"])


@pytest.fixture(scope="session")
def playwright_session():
    """One Playwright per test process: its sync API cannot run a second one beside it (asyncio loop)."""
    if not shutil.which("chromium") and not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright_session):
    b = playwright_session.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield b
    b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1024, "height": 600})  # a 7-inch touch screen
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    yield pg
    context.close()


def _sign_in(page, kit: RunningKit, role: str = "lead", path: str = "") -> None:
    page.goto(kit.url + "login" + (f"?next={path}" if path else ""))
    page.fill("#pin", kit.pins[role])
    page.click("button[type=submit]")
    page.wait_for_load_state()


@pytest.fixture
def sign_in():
    """sign_in(page, kit, role="lead", path="") signs the page in with that role's PIN."""
    return _sign_in


@pytest.fixture
def command_spy(tmp_path, monkeypatch):
    """``command_spy("systemctl")`` puts a stand-in first on PATH that only records its arguments, and
    returns the file it writes: the file exists if and only if the kit ran the host command."""
    bin_dir = tmp_path / "spy-bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def install(name: str) -> Path:
        mark = tmp_path / f"{name}-ran"
        spy = bin_dir / name
        spy.write_text(f"#!/bin/sh\necho \"$@\" >> {mark}\n")
        spy.chmod(spy.stat().st_mode | stat.S_IXUSR)
        assert shutil.which(name) == str(spy)
        return mark

    return install
