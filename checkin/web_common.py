"""What the checkin web modules share: a refused request as one JSON error and one log line; the body."""

from __future__ import annotations

import logging

from flask import jsonify, request

log = logging.getLogger("fieldkit.checkin.web")


def error(message: str, code: str = "bad_request", status: int = 400):
    log.info("event=checkin_api_refused code=%s message=%r", code, message)
    return jsonify(error=message, code=code), status


def json_body() -> dict:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}
