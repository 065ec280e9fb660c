"""Personal records: what must reach HQ but never the ledger.

DESIGN.md keeps personal data out of the ledger (it is uploaded, shared with peers and kept for the
audit). A feature that collects something personal with consent (an e-mail for the organiser's list)
records in the ledger *that* it happened (an id, no e-mail) and puts the record itself here; the sync
agent uploads these rows to HQ through their own idempotent endpoint and marks them uploaded, so the
kit knows HQ holds them (and may then erase them).
"""

from __future__ import annotations

import json
import re
import sqlite3
import time

from kit.db import Database

KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}\.[a-z][a-z0-9_]{0,31}$")
MAX_BODY_BYTES = 8 * 1024


def put(conn: sqlite3.Connection, kind: str, record_id: str, body: dict, now: float | None = None) -> bool:
    """Keep a record for HQ, inside the caller's transaction (with the ledger event that says it happened)."""
    if not KIND_RE.match(kind):
        raise ValueError(f"personal record kind {kind!r} must be <feature>.<name>")
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    if len(text.encode()) > MAX_BODY_BYTES:
        raise ValueError(f"a personal record is at most {MAX_BODY_BYTES} bytes")
    cur = conn.execute("INSERT OR IGNORE INTO kit_personal_outbox (id, kind, body, created_at) VALUES (?,?,?,?)",
                       (record_id, kind, text, time.time() if now is None else now))
    return cur.rowcount == 1


def pending(db: Database, limit: int = 500) -> list[dict]:
    return [{"id": r["id"], "kind": r["kind"], "body": json.loads(r["body"])} for r in db.query(
        "SELECT id, kind, body FROM kit_personal_outbox WHERE uploaded_at IS NULL ORDER BY created_at LIMIT ?", (limit,))]


def mark_uploaded(db: Database, ids: list[str], now: float | None = None) -> None:
    if not ids:
        return
    with db.transaction() as conn:
        conn.executemany("UPDATE kit_personal_outbox SET uploaded_at = ? WHERE id = ? AND uploaded_at IS NULL",
                         [(time.time() if now is None else now, i) for i in ids])


def counts(db: Database) -> dict:
    row = db.query_one("SELECT COUNT(*) AS total, COALESCE(SUM(uploaded_at IS NULL), 0) AS waiting FROM kit_personal_outbox")
    return {"total": row["total"], "waiting": row["waiting"]}
