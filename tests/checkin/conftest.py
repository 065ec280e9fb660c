"""Fixtures of the checkin tests: a door on a fresh kit with a signing key and a small guest list."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from checkin import signed
from checkin.keys import add_keys
from checkin.scans import record_scan
from checkin.validate import DoorRules, KeyRing
from kit.clock import KitClock
from kit.ledger import Ledger
from tests.conftest import ServiceThread


@dataclass
class Door:
    config: object
    db: object
    ledger: Ledger
    rules: DoorRules
    keyring: KeyRing
    key: Ed25519PrivateKey

    def scan(self, payload, **kw) -> dict:
        return record_scan(self.db, self.ledger, self.rules, payload, keyring=self.keyring, **kw)

    def ticket(self, item: int = 1, seed: str = "ABCDEFGHJ", valid_from: int = 0, valid_until: int = 0,
               key: Ed25519PrivateKey | None = None) -> str:
        return signed.sign(key or self.key, signed.TicketPayload(seed, item, 0, 0, valid_from, valid_until))

    def with_rules(self, **changes) -> Door:
        fields = {**self.rules.__dict__, **changes}
        return Door(self.config, self.db, self.ledger, DoorRules(**fields), self.keyring, self.key)


def make_door(config, db) -> Door:
    clock = KitClock(config.data_dir, True)
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    with db.transaction() as conn:
        add_keys(conn, [key.public_key()], "kit", "test key")
    return Door(config, db, Ledger(config.kit_id, clock), DoorRules.from_config(config), KeyRing(), key)


@pytest.fixture
def door(config, db) -> Door:
    return make_door(config, db)


def kit_config(home, broker_port: int, kit_id: str, site: str = "testsite", **settings):
    """A kit of its own (FIELDKIT_HOME, database migrated) on the given broker, simulated devices."""
    import os

    from kit.config import load_config
    from kit.db import Database, apply_migrations
    from kit.features import all_migration_sets

    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDKIT_")}
    env.update({"FIELDKIT_HOME": str(home), "FIELDKIT_MQTT_PORT": str(broker_port), "FIELDKIT_KIT_ID": kit_id,
                "FIELDKIT_KIT_SITE": site, "FIELDKIT_KIT_SIMULATE": "1", "FIELDKIT_KIT_CLOCK_ASSUME_SYNCED": "1",
                "FIELDKIT_CHECKIN_CAMERA_BACKEND": "none", "FIELDKIT_CHECKIN_FEEDBACK_BACKEND": "none"})
    env.update({f"FIELDKIT_{k.upper()}": str(v) for k, v in settings.items()})
    config = load_config(env)
    db = Database(config.db_path)
    apply_migrations(db, all_migration_sets())
    db.close()
    return config


class RunningService(ServiceThread):
    """The real checkin service loop on a thread, with its own bus connection."""

    def __init__(self, config):
        from checkin.service import run
        from kit.testing import wait_for

        super().__init__("checkin", config, run, ready="door")
        self.door = self.ctx.door
        # A serial port flushes its input when opened: wait until the scanners are reading.
        wait_for(lambda: all(s.status() == "ok" for s in self.door.sources), 10, what="scan sources ready")


@pytest.fixture
def start_service():
    running: list[RunningService] = []

    def start(config) -> RunningService:
        service = RunningService(config)
        running.append(service)
        return service

    yield start
    for service in running:
        service.stop()
