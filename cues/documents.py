"""The cue sheet as a reference document (kind ``cues.sheet``): import, and reading the current one."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from cues.sheet import Sheet, SheetError, parse_sheet
from kit.documents import DocumentError, DocumentKind, ImportReport

log = logging.getLogger("fieldkit.cues")
KIND = "cues.sheet"
DEMO_SHEET = Path(__file__).parent / "demo" / "demo_sheet.toml"


def sound_dir(config) -> Path:
    return Path(config["cues.sound_dir"]) if config["cues.sound_dir"] else config.data_dir / "sounds"


def import_sheet(conn: sqlite3.Connection, data: bytes, filename: str, config, progress=None) -> ImportReport:
    """Validate a cue sheet; a broken one is refused whole (the running sheet stays)."""
    try:
        sheet = parse_sheet(data, filename)
    except SheetError as e:
        log.warning("event=cue_sheet_refused file=%s line=%s reason=%r", filename, e.line, e.reason)
        raise DocumentError(str(e)) from None
    report = ImportReport(kind=KIND, imported=len(sheet.cues))
    report.notes.append(f"{sheet.name}: {len(sheet.cue_list)} cues in the GO list, "
                        f"{len(sheet.cues) - len(sheet.cue_list)} run by triggers")
    folder = sound_dir(config)
    missing = sorted({f for c in sheet.cues for a in c.actions for f in a.files
                      if not (Path(f) if Path(f).is_absolute() else folder / f).is_file()})
    if missing:
        report.notes.append(f"sound files not found in {folder} (those cues play silently): {', '.join(missing)}")
    return report


SHEET_DOCUMENT = DocumentKind(KIND, "Cue sheet", import_sheet, accept=(".toml",),
                              help="Cues, triggers and actions for lights and sound (TOML; see docs/cues.md).")


def current_sheet_row(db) -> sqlite3.Row | None:
    return db.query_one("SELECT version, path, filename FROM kit_documents WHERE kind = ? ORDER BY version DESC LIMIT 1",
                        (KIND,))


def load_current_sheet(db) -> tuple[Sheet | None, int]:
    """The newest imported sheet and its version; (None, 0) when none was imported yet."""
    row = current_sheet_row(db)
    if row is None:
        return None, 0
    return parse_sheet(Path(row["path"]).read_bytes(), row["filename"]), row["version"]


def empty_sheet() -> Sheet:
    return Sheet("no cue sheet", {}, 24, {}, {}, {}, [])
