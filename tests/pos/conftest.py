"""Fixtures of the pos tests: a kit with the demo catalogue imported, and a helper to sell."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from kit.config import Config
from kit.db import Database
from kit.ledger import Ledger

DEMO = Path(__file__).parents[2] / "pos" / "demo"


@dataclass
class Pos:
    config: Config
    db: Database
    ledger: Ledger

    def sell(self, *items: str, pay: list[dict] | None = None, key: str | None = None, discount: dict | None = None,
             **body):
        from pos.checkout import make_sale, parse_sale_request

        parsed = []
        for spec in items:
            sku, _, qty = spec.partition(":")
            parsed.append({"sku": sku, "qty": int(qty) if qty else 1})
        req = {"items": parsed, "payments": pay if pay is not None else [{"method": "cash", "amount": "1000.00"}],
               "idempotency_key": key, "discount": discount, **body}
        return make_sale(self.db, self.ledger, self.config, parse_sale_request(req))

    def import_doc(self, kind: str, data: bytes, filename: str):
        from kit.documents import import_document

        return import_document(self.config, self.db, kind, data, filename)


@pytest.fixture
def pos_kit(config, db) -> Pos:
    from kit.clock import KitClock

    config = config.with_values(kit__event="Night Market", pos__default_tax_rate="19")
    clock = KitClock(config.data_dir, True, "offset")
    kit = Pos(config, db, Ledger(config.kit_id, clock))
    kit.import_doc("pos.catalogue", (DEMO / "catalogue.csv").read_bytes(), "catalogue.csv")
    kit.import_doc("pos.pickups", (DEMO / "pickups.csv").read_bytes(), "pickups.csv")
    return kit
