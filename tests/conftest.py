"""Shared fixtures: a real Mosquitto, a fresh FIELDKIT_HOME, the kit's database and bus.

Feature tests build on these; nothing here fakes a broker, a database or a clock source.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from kit.testing import Mosquitto, wait_for

os.environ.setdefault("ESCPOS_CAPABILITIES_PICKLE_DIR", str(Path.home() / ".cache" / "fieldkit-escpos"))


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
        done = threading.Event()
        bus.subscribe(pattern, recorder)
        bus.client.subscribe(pattern)  # idempotent; ensures the SUBACK below covers it
        bus.publish("fieldkit/test/sync", json.dumps({"ping": 1}))
        done.set()
        return recorder

    yield subscribe
    bus.stop(clean=False)
