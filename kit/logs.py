"""Logging set-up: one line per record, ``key=value`` so it greps (journald adds the time)."""

from __future__ import annotations

import logging
import os
import sys


def setup_logging(level: str = "INFO", name: str = "") -> None:
    fmt = "%(levelname)s %(name)s " + (f"svc={name} " if name else "") + "%(message)s"
    if not os.environ.get("INVOCATION_ID"):  # not under systemd: add the time ourselves
        fmt = "%(asctime)s " + fmt
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
