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
