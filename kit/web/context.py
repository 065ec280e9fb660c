"""Access to the web process's kit context (config, db, bus, ledger, clock) inside a request."""

from __future__ import annotations

from flask import current_app

from kit.service import ServiceContext


def kit() -> ServiceContext:
    return current_app.extensions["fieldkit"]
