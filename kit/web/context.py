"""Access to the web process's kit context (config, db, bus, ledger, clock) inside a request."""

from __future__ import annotations

from flask import current_app, request

from kit.service import ServiceContext


def kit() -> ServiceContext:
    return current_app.extensions["fieldkit"]


def json_object() -> dict | None:
    """The request's JSON body when it is an object; None for no body, bad JSON, an array, a string."""
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else None
