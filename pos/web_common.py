"""What the pos web modules share: a refused request as one JSON error and one log line."""

from __future__ import annotations

import logging

from flask import jsonify, request

log = logging.getLogger("fieldkit.pos")


def refuse(e: Exception, status: int = 400):
    log.warning("event=pos_request_refused path=%s reason=%r", request.path, str(e))
    return jsonify(error=str(e)), status
