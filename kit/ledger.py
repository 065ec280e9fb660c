"""The ledger: this kit's append-only event log, its audit trail and sync outbox.

Append inside the same transaction as the feature's own state change::

    with db.transaction() as conn:
        conn.execute("INSERT INTO pos_sales ...")
        ledger.append(conn, "pos.sale", {...})

``seq`` is gapless (assigned inside the write transaction), ``id`` is globally unique, each row
carries a hash chained to the previous row, and UPDATE/DELETE are refused by triggers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from kit.clock import KitClock, hlc_merge, hlc_next
from kit.db import Database, DatabaseLock

log = logging.getLogger("fieldkit.ledger")

SCHEMA = """
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    kit TEXT NOT NULL,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    hlc INTEGER NOT NULL,
    wall_time TEXT NOT NULL,
    clock_synced INTEGER NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX events_type ON events(type);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TABLE kit_hlc (id INTEGER PRIMARY KEY CHECK (id = 1), last INTEGER NOT NULL);
"""

GENESIS = "0" * 64


@dataclass(frozen=True)
class Event:
    seq: int
    id: str
    kit: str
    type: str
    payload: dict
    hlc: int
    wall_time: str
    clock_synced: bool
    hash: str

    def as_dict(self) -> dict:
        return {
            "seq": self.seq, "id": self.id, "kit": self.kit, "type": self.type, "payload": self.payload,
            "hlc": self.hlc, "wall_time": self.wall_time, "clock_synced": self.clock_synced, "hash": self.hash,
        }

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Event:
        return cls(row["seq"], row["id"], row["kit"], row["type"], json.loads(row["payload"]), row["hlc"],
                   row["wall_time"], bool(row["clock_synced"]), row["hash"])


def canonical_json(payload: dict) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _chain_hash(prev: str, seq: int, id_: str, kit: str, type_: str, payload: str, hlc: int, wall: str, synced: int) -> str:
    material = "\x1f".join([prev, str(seq), id_, kit, type_, payload, str(hlc), wall, str(synced)])
    return hashlib.sha256(material.encode()).hexdigest()


class Ledger:
    def __init__(self, kit_id: str, clock: KitClock):
        self.kit_id = kit_id
        self.clock = clock

    def append(self, conn: sqlite3.Connection, type: str, payload: dict) -> Event:
        """Append one event; must run inside the caller's write transaction."""
        if not conn.in_transaction:
            raise RuntimeError("ledger.append must run inside db.transaction() with the state change")
        text = canonical_json(payload)
        last = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
        hlc = self._tick(conn)
        status = self.clock.status()
        wall = datetime.fromtimestamp(status.now, UTC).isoformat(timespec="milliseconds")
        synced = int(status.synced)
        id_ = str(uuid.uuid4())
        digest = _chain_hash(prev, seq, id_, self.kit_id, type, text, hlc, wall, synced)
        conn.execute(
            "INSERT INTO events (seq, id, kit, type, payload, hlc, wall_time, clock_synced, hash)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            (seq, id_, self.kit_id, type, text, hlc, wall, synced, digest),
        )
        return Event(seq, id_, self.kit_id, type, payload, hlc, wall, bool(synced), digest)

    def _tick(self, conn: sqlite3.Connection, remote: int | None = None) -> int:
        row = conn.execute("SELECT last FROM kit_hlc WHERE id = 1").fetchone()
        last = row[0] if row else 0
        wall_ms = int(self.clock.time() * 1000)
        value = hlc_next(last, wall_ms) if remote is None else hlc_merge(last, remote, wall_ms)
        conn.execute("INSERT INTO kit_hlc (id, last) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET last = excluded.last", (value,))
        return value

    def observe(self, conn: sqlite3.Connection, remote_hlc: int) -> int:
        """Merge a peer's HLC value (a shared check-in) so our next events order after it."""
        return self._tick(conn, remote_hlc)


def events_after(db: Database, seq: int, limit: int = 1000) -> list[Event]:
    rows = db.query("SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))
    return [Event.from_row(r) for r in rows]


def iter_events(conn: sqlite3.Connection, types: tuple[str, ...] | None = None) -> Iterator[Event]:
    if types:
        marks = ",".join("?" * len(types))
        cur = conn.execute(f"SELECT * FROM events WHERE type IN ({marks}) ORDER BY seq", types)
    else:
        cur = conn.execute("SELECT * FROM events ORDER BY seq")
    for row in cur:
        yield Event.from_row(row)


def last_seq(db: Database) -> int:
    return db.scalar("SELECT COALESCE(MAX(seq), 0) FROM events") or 0


def verify(db: Database) -> tuple[int, list[str]]:
    """Check the ledger: seq gapless from 1, ids unique, payloads parse, hash chain intact."""
    problems: list[str] = []
    expected, prev, count = 1, GENESIS, 0
    seen: set[str] = set()
    for row in db.conn.execute("SELECT * FROM events ORDER BY seq"):
        count += 1
        if row["seq"] != expected:
            problems.append(f"seq gap: expected {expected}, found {row['seq']}")
        expected = row["seq"] + 1
        if row["id"] in seen:
            problems.append(f"seq {row['seq']}: duplicate id {row['id']}")
        seen.add(row["id"])
        try:
            if not isinstance(json.loads(row["payload"]), dict):
                problems.append(f"seq {row['seq']}: payload is not a JSON object")
        except ValueError:
            problems.append(f"seq {row['seq']}: payload is not valid JSON")
        digest = _chain_hash(prev, row["seq"], row["id"], row["kit"], row["type"], row["payload"], row["hlc"],
                             row["wall_time"], row["clock_synced"])
        if digest != row["hash"]:
            problems.append(f"seq {row['seq']}: hash does not match its contents and the row before")
        prev = row["hash"]
    return count, problems


def rebuild(db: Database, features: list) -> dict[str, int]:
    """Empty every feature's projection tables and replay the ledger into them, in one transaction.

    Refuses while services hold the database. Reference documents are left alone.
    """
    lock = DatabaseLock(db.path)
    lock.exclusive()
    try:
        replayed: dict[str, int] = {}
        with db.transaction() as conn:
            for f in features:
                if not f.apply_event:
                    continue
                for table in f.projection_tables:
                    conn.execute(f'DELETE FROM "{table}"')
                    if conn.execute("SELECT 1 FROM sqlite_master WHERE name='sqlite_sequence'").fetchone():
                        conn.execute("DELETE FROM sqlite_sequence WHERE name = ?", (table,))
                replayed[f.name] = 0
            for event in iter_events(conn):
                prefix = event.type.split(".", 1)[0]
                for f in features:
                    if f.apply_event and f.name == prefix:
                        f.apply_event(conn, event.as_dict())
                        replayed[f.name] += 1
        log.info("event=ledger_rebuilt replayed=%s", replayed)
        return replayed
    finally:
        lock.release()
