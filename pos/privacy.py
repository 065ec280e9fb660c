"""Merch's personal data, erased after the event (kit/privacy.py calls this through the registration):
the names on pickup orders and the raw copies of imported pickup lists. Codes, items and what was
collected stay, so a code is still handed over once."""

from __future__ import annotations


def erase_personal_data(ctx) -> None:
    ctx.blank("names on pickup orders (pos_pickup_orders)", "pos_pickup_orders", ("name", "note"))
    ctx.remove_documents("pos.pickups")
