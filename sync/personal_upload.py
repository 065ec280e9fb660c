"""Uploading the kit's personal records (kit/personal.py) to HQ, after the ledger, in each sync session."""

from __future__ import annotations

import logging

from kit import personal
from kit.db import Database

log = logging.getLogger("fieldkit.sync")
BATCH = 200


def upload_personal(db: Database, client) -> int:
    """Send what HQ does not hold yet; mark what it stored or already had. Returns how many HQ now holds.

    A record HQ refuses stays waiting (logged with HQ's reason): it is someone's data, never dropped here.
    """
    held = 0
    while True:
        waiting = personal.pending(db, BATCH)
        if not waiting:
            return held
        results = client.upload_personal(waiting)
        ok = [w["id"] for w, r in zip(waiting, results, strict=True) if r.get("status") in ("stored", "duplicate")]
        for w, r in zip(waiting, results, strict=True):
            if r.get("status") not in ("stored", "duplicate"):
                log.warning("event=personal_refused_by_hq id=%s kind=%s reason=%r", w["id"], w["kind"], r.get("error"))
        personal.mark_uploaded(db, ok)
        held += len(ok)
        if len(ok) < len(waiting):
            return held  # some were refused: do not loop on them; the next session tries again
