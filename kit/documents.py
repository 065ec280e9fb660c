"""Reference documents: ticket lists, keys, catalogue, pickup lists, cue sheets.

They come from outside (a CLI import, the dashboard's upload page, or HQ via the sync agent) and are
not ledger events. Each import is stored as a versioned file plus a row in ``kit_documents``; the
owning feature's importer rebuilds its own tables from it. A preview runs the very same importer
inside a transaction that is rolled back, so what the preview says is what the import will do.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from kit.config import Config
from kit.db import Database
from kit.files import safe_filename, write_durably

log = logging.getLogger("fieldkit.documents")
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024


class DocumentError(Exception):
    """The document cannot be imported at all (wrong format, unreadable); the message says why."""


def csv_rows(reader: Iterator, filename: str) -> list:
    """Every row of a ``csv.reader``/``csv.DictReader``; a row the csv module cannot read (a field over
    its 128 KiB limit, a stray NUL) is a DocumentError naming the line, never a traceback."""
    try:
        if isinstance(reader, csv.DictReader):
            reader.fieldnames  # noqa: B018 -- reads the header row, which can fail like any other
        return list(reader)
    except csv.Error as e:
        raise DocumentError(f"{filename}: line {reader.line_num} cannot be read as CSV ({e})") from None


@dataclass
class ImportReport:
    kind: str = ""
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (row number, reason)
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # what a document says beyond its rows (e.g. "rsvps")

    def summary(self) -> str:
        s = f"{self.imported} imported, {self.updated} updated, {self.unchanged} unchanged, {len(self.skipped)} skipped"
        return s

    def as_dict(self) -> dict:
        return asdict(self)


# importer(conn, data, filename, config, progress) -> ImportReport; runs inside a write transaction.
Importer = Callable[[sqlite3.Connection, bytes, str, Config, Callable[[int, int], None] | None], ImportReport]


@dataclass(frozen=True)
class DocumentKind:
    kind: str  # "<feature>.<name>", e.g. "checkin.attendees"
    title: str  # what a lead calls it: "Attendee list"
    importer: Importer
    accept: tuple[str, ...] = (".csv",)  # file name endings offered on the upload page
    help: str = ""


@dataclass
class DocumentRecord:
    kind: str
    version: int
    source: str
    filename: str
    sha256: str
    path: str
    imported_at: str
    report: dict


def document_kinds() -> dict[str, DocumentKind]:
    from kit.features import load_features

    return {d.kind: d for f in load_features() for d in f.documents}


def import_document(
    config: Config,
    db: Database,
    kind: str,
    data: bytes,
    filename: str,
    *,
    source: str = "cli",
    source_version: str | None = None,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
    kinds: dict[str, DocumentKind] | None = None,
) -> tuple[DocumentRecord | None, ImportReport]:
    """Import (or, with ``dry_run``, preview) one reference document through its feature's importer."""
    kinds = kinds if kinds is not None else document_kinds()
    if kind not in kinds:
        raise DocumentError(f"unknown document kind {kind!r}; known: {', '.join(sorted(kinds)) or 'none'}")
    if len(data) > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"{filename}: {len(data)} bytes is larger than the {MAX_DOCUMENT_BYTES} byte limit")
    doc = kinds[kind]
    digest = hashlib.sha256(data).hexdigest()
    conn = db.conn
    with db.transaction():
        conn.execute("SAVEPOINT document_import")
        try:
            report = doc.importer(conn, data, filename, config, progress)
            report.kind = kind
        except BaseException:
            conn.execute("ROLLBACK TO document_import")
            conn.execute("RELEASE document_import")
            raise
        if dry_run:
            conn.execute("ROLLBACK TO document_import")
            conn.execute("RELEASE document_import")
            return None, report
        version = (conn.execute("SELECT COALESCE(MAX(version), 0) FROM kit_documents WHERE kind = ?", (kind,)).fetchone()[0]) + 1
        folder = config.data_dir / "documents" / kind
        folder.mkdir(parents=True, exist_ok=True)
        path = write_durably(folder / f"{version:05d}-{safe_filename(filename)}", data)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        conn.execute(
            "INSERT INTO kit_documents (kind, version, source, source_version, filename, sha256, size, path, report, imported_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?)",
            (kind, version, source, source_version, filename, digest, len(data), str(path), json.dumps(report.as_dict()), now),
        )
        conn.execute("RELEASE document_import")
    log.info("event=document_imported kind=%s version=%s source=%s %s", kind, version, source, report.summary().replace(", ", " "))
    return DocumentRecord(kind, version, source, filename, digest, str(path), now, report.as_dict()), report


def current_documents(db: Database) -> list[dict]:
    rows = db.query(
        "SELECT kind, MAX(version) AS version, filename, source, imported_at, report FROM kit_documents GROUP BY kind ORDER BY kind"
    )
    return [dict(r) for r in rows]
