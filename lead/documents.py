"""The run-sheet as a reference document (kind ``lead.runsheet``), imported on any kit of the site.

Importing publishes it: a ``lead.runsheet_published`` ledger event in the import's own transaction,
which the lead service shares with the site's other kits, so every kit runs the same evening.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime

from kit.documents import DocumentError, DocumentKind, ImportReport
from lead.evening import publish_runsheet
from lead.runsheet import RunSheetError, parse_runsheet

log = logging.getLogger("fieldkit.lead")
KIND = "lead.runsheet"


def _ledger(config):
    from kit.clock import KitClock
    from kit.ledger import Ledger

    clock = KitClock(config.data_dir, config["kit.clock_assume_synced"], config["kit.clock_method"])
    return Ledger(config.kit_id, clock, config["site.max_clock_ahead_seconds"])


def import_runsheet(conn: sqlite3.Connection, data: bytes, filename: str, config, progress=None) -> ImportReport:
    """Validate a run-sheet and make it the site's; a broken one is refused whole (the running one stays)."""
    try:
        sheet = parse_runsheet(data, config.tz, filename)
    except RunSheetError as e:
        log.warning("event=runsheet_refused file=%s line=%s reason=%r", filename, e.line, e.reason)
        raise DocumentError(str(e)) from None
    publish_runsheet(conn, _ledger(config), sheet, by="import")
    report = ImportReport(kind=KIND, imported=len(sheet.slots))
    first, last = sheet.slots[0], sheet.slots[-1]
    report.notes.append(f"{sheet.name}: {len(sheet.slots)} slots, "
                        f"{datetime.fromtimestamp(first.start, config.tz):%H:%M}–{datetime.fromtimestamp(last.end, config.tz):%H:%M}; "
                        "shared with the site's other kits")
    log.info("event=runsheet_imported name=%r slots=%d digest=%s", sheet.name, len(sheet.slots), sheet.digest[:12])
    return report


RUNSHEET_DOCUMENT = DocumentKind(KIND, "Run-sheet", import_runsheet, accept=(".toml",),
                                 help="The evening's micro-stage slots: name, start, minutes, stage, host (TOML; see docs/lead.md).")
