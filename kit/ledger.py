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
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from kit.clock import HLC_COUNTER_BITS, KitClock, hlc_merge, hlc_next
from kit.db import Database, DatabaseLock
from kit.event_codec import pack, unpack
from kit.ids import time_ordered_uuid
from kit.ledger_hold import LedgerHeld, hold_reason
from kit.update.hold import refuse_if_held

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

# Truncation (kit 0009_ledger_checkpoint): events up to a checkpoint may go once HQ holds them; the checkpoint
# keeps the last deleted seq and its hash, so the chain still verifies from there. The delete trigger is
# replaced by one that refuses any event above the checkpoint, and the checkpoint only moves forward.
CHECKPOINT_SCHEMA = """
CREATE TABLE kit_ledger_checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,                  -- the last deleted event
    hash TEXT NOT NULL,                    -- its hash: the next event's hash covers it
    truncated_at TEXT NOT NULL,
    deleted INTEGER NOT NULL               -- events deleted by every truncation so far
);
CREATE TRIGGER kit_ledger_checkpoint_forward BEFORE UPDATE ON kit_ledger_checkpoint WHEN NEW.seq < OLD.seq
BEGIN SELECT RAISE(ABORT, 'the ledger checkpoint only moves forward'); END;
CREATE TRIGGER kit_ledger_checkpoint_no_delete BEFORE DELETE ON kit_ledger_checkpoint
BEGIN SELECT RAISE(ABORT, 'the ledger checkpoint cannot be removed'); END;
DROP TRIGGER events_no_delete;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
WHEN OLD.seq > COALESCE((SELECT seq FROM kit_ledger_checkpoint WHERE id = 1), 0)
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only (only events up to its checkpoint may be truncated)'); END;
"""
TRUNCATED_EVENT = "kit.ledger_truncated"

GENESIS = "0" * 64
DEFAULT_MAX_CLOCK_AHEAD_SECONDS = 300.0
HLC_MAX = (1 << 63) - 1  # SQLite INTEGER: one more and every append overflows


class ClockAheadError(ValueError):
    """A peer's HLC value is further ahead of this kit's clock than ``site.max_clock_ahead_seconds``.

    Merging it would drag this kit's clock (and every event it writes) into the future; one value near
    2^63 would leave no room for another append.
    """

    def __init__(self, remote_hlc: int, ahead_seconds: float, limit_seconds: float):
        super().__init__(f"peer clock {ahead_seconds:.0f} s ahead of this kit's (limit {limit_seconds:.0f} s)")
        self.remote_hlc, self.ahead_seconds, self.limit_seconds = remote_hlc, ahead_seconds, limit_seconds


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
        return cls(row["seq"], row["id"], row["kit"], row["type"], json.loads(unpack(row["payload"])), row["hlc"],
                   row["wall_time"], bool(row["clock_synced"]), row["hash"])


def canonical_json(payload: dict) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _chain_hash(prev: str, seq: int, id_: str, kit: str, type_: str, payload: str, hlc: int, wall: str, synced: int) -> str:
    material = "\x1f".join([prev, str(seq), id_, kit, type_, payload, str(hlc), wall, str(synced)])
    return hashlib.sha256(material.encode()).hexdigest()


class Ledger:
    def __init__(self, kit_id: str, clock: KitClock,
                 max_clock_ahead_seconds: float = DEFAULT_MAX_CLOCK_AHEAD_SECONDS):
        self.kit_id = kit_id
        self.clock = clock
        self.max_clock_ahead_seconds = float(max_clock_ahead_seconds)

    def append(self, conn: sqlite3.Connection, type: str, payload: dict) -> Event:
        """Append one event; must run inside the caller's write transaction."""
        if not conn.in_transaction:
            raise RuntimeError("ledger.append must run inside db.transaction() with the state change")
        held = hold_reason(conn)
        if held:  # checked inside the write transaction: no sale or admission slips past a hold
            raise LedgerHeld(held)
        refuse_if_held(conn)  # a release on trial: nothing may enter the ledger a rollback would lose
        text = canonical_json(payload)
        # One statement for the chain's head and the HLC to follow: the last event's, or a merged peer's
        # (kit_hlc) when that is later. The append writes no kit_hlc row: one page fewer in every commit.
        merged, last_seq_, last_hash, last_hlc = conn.execute(
            "SELECT (SELECT last FROM kit_hlc WHERE id = 1), e.seq, e.hash, e.hlc FROM (SELECT 1)"
            " LEFT JOIN (SELECT seq, hash, hlc FROM events ORDER BY seq DESC LIMIT 1) e"
        ).fetchone()
        if last_seq_ is None:  # an empty ledger is a new one, or one truncated to its checkpoint: carry on from it
            cp = checkpoint(conn)
            last = (cp.seq, cp.hash) if cp else None
        else:
            last = (last_seq_, last_hash)
        seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
        now = self.clock.time()  # one reading for the HLC, the wall time and whether it is vouched for
        hlc = hlc_next(max(merged or 0, last_hlc or 0), int(now * 1000))
        wall = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")
        synced = int(self.clock.synced_at(now))
        id_ = time_ordered_uuid(now)  # beside the last event's in the id index, not on a random page
        digest = _chain_hash(prev, seq, id_, self.kit_id, type, text, hlc, wall, synced)
        conn.execute(
            "INSERT INTO events (seq, id, kit, type, payload, hlc, wall_time, clock_synced, hash)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            (seq, id_, self.kit_id, type, pack(text), hlc, wall, synced, digest),
        )
        return Event(seq, id_, self.kit_id, type, payload, hlc, wall, bool(synced), digest)

    def _merge(self, conn: sqlite3.Connection, wall_ms: int, remote: int) -> int:
        # Read and written inside the write transaction: monotonic across processes. The kit's own last
        # value is the later of kit_hlc and the newest event's HLC (appends do not write kit_hlc).
        row = conn.execute(
            "SELECT MAX(COALESCE((SELECT last FROM kit_hlc WHERE id = 1), 0),"
            " COALESCE((SELECT hlc FROM events ORDER BY seq DESC LIMIT 1), 0))"
        ).fetchone()
        value = hlc_merge(row[0], remote, wall_ms)
        conn.execute("INSERT INTO kit_hlc (id, last) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET last = excluded.last", (value,))
        return value

    def clock_ahead_seconds(self, remote_hlc: int) -> float:
        """How far a peer's HLC value is ahead of this kit's clock (negative: behind)."""
        return ((remote_hlc >> HLC_COUNTER_BITS) - self.clock.time() * 1000) / 1000

    def check_remote_hlc(self, remote_hlc: object) -> int:
        """The peer's HLC value if it may be merged; ValueError / ClockAheadError if not."""
        if not isinstance(remote_hlc, int) or isinstance(remote_hlc, bool) or not 0 <= remote_hlc <= HLC_MAX:
            raise ValueError(f"HLC value must be an integer from 0 to 2^63-1, not {remote_hlc!r:.40}")
        ahead = self.clock_ahead_seconds(remote_hlc)
        if ahead > self.max_clock_ahead_seconds:
            raise ClockAheadError(remote_hlc, ahead, self.max_clock_ahead_seconds)
        return remote_hlc

    def observe(self, conn: sqlite3.Connection, remote_hlc: int) -> int:
        """Merge a peer's HLC value (a shared event) so our next events order after it.

        Refuses (ClockAheadError) a value further ahead of our clock than max_clock_ahead_seconds, so no
        caller can push this kit's clock to the end of its range.
        """
        remote = self.check_remote_hlc(remote_hlc)
        return self._merge(conn, int(self.clock.time() * 1000), remote)


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


@dataclass(frozen=True)
class Checkpoint:
    """Where a truncated ledger starts: the last deleted event's seq and hash."""

    seq: int
    hash: str
    truncated_at: str
    deleted: int


class LedgerTruncated(Exception):
    """The ledger no longer starts at seq 1, so what needs every event (a rebuild) cannot run."""


def checkpoint(conn: sqlite3.Connection) -> Checkpoint | None:
    try:
        row = conn.execute("SELECT seq, hash, truncated_at, deleted FROM kit_ledger_checkpoint WHERE id = 1").fetchone()
    except sqlite3.OperationalError:  # a database from before migration kit 0008: never truncated
        return None
    return Checkpoint(int(row[0]), str(row[1]), str(row[2]), int(row[3])) if row else None


def truncation_point(conn: sqlite3.Connection, acknowledged: int, keep_days: float, now: float) -> int:
    """The highest seq that may be deleted: held upstream (``acknowledged``) and older than ``keep_days``.

    Age is read from the HLC, not the wall time: the HLC never goes backwards along the seq, so what
    qualifies is always a prefix of the ledger, even after the wall clock was corrected.
    """
    cutoff = int((now - keep_days * 86400) * 1000) << HLC_COUNTER_BITS
    row = conn.execute("SELECT MAX(seq) FROM events WHERE seq <= ? AND hlc < ?", (int(acknowledged), cutoff)).fetchone()
    return int(row[0] or 0)


def truncate(db: Database, ledger: Ledger, through: int, reason: str) -> int:
    """Delete the events up to seq ``through``, keeping a checkpoint; returns how many went.

    The caller has made sure HQ holds them (see kit/privacy.py). Deleted rows are overwritten on disk
    (secure_delete): old payloads may carry names. The truncation is itself a ledger event, after the
    checkpoint, so the audit says what went and why.
    """
    db.conn.execute("PRAGMA secure_delete=ON")
    with db.transaction() as conn:
        cp = checkpoint(conn)
        start = cp.seq if cp else 0
        if through <= start:
            return 0
        row = conn.execute("SELECT seq, hash FROM events WHERE seq = ?", (int(through),)).fetchone()
        if row is None:
            raise ValueError(f"seq {through} is not in the ledger")
        deleted = conn.execute("SELECT COUNT(*) FROM events WHERE seq <= ?", (int(through),)).fetchone()[0]
        # The HLC continues from the newest event; one about to go keeps its value in kit_hlc first.
        conn.execute("INSERT INTO kit_hlc (id, last) SELECT 1, MAX(hlc) FROM events WHERE seq <= ? AND true"
                     " ON CONFLICT(id) DO UPDATE SET last = MAX(last, excluded.last)", (int(through),))
        now = datetime.now(UTC).isoformat(timespec="seconds")
        conn.execute(
            "INSERT INTO kit_ledger_checkpoint (id, seq, hash, truncated_at, deleted) VALUES (1, ?, ?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,"
            " truncated_at = excluded.truncated_at, deleted = kit_ledger_checkpoint.deleted + excluded.deleted",
            (row[0], row[1], now, deleted))
        conn.execute("DELETE FROM events WHERE seq <= ?", (int(through),))
        ledger.append(conn, TRUNCATED_EVENT, {"from_seq": start + 1, "through_seq": int(through), "events": deleted,
                                              "checkpoint_hash": row[1], "reason": reason[:200]})
    log.info("event=ledger_truncated from_seq=%d through_seq=%d events=%d reason=%r", start + 1, through, deleted, reason)
    return deleted


def verify(db: Database) -> tuple[int, list[str]]:
    """Check the ledger: seq gapless from 1 (or from its checkpoint), ids unique, payloads parse, hash chain intact."""
    problems: list[str] = []
    cp = checkpoint(db.conn)
    (expected, prev), count = ((cp.seq + 1, cp.hash) if cp else (1, GENESIS)), 0
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
            text = unpack(row["payload"])
            if not isinstance(json.loads(text), dict):
                problems.append(f"seq {row['seq']}: payload is not a JSON object")
        except ValueError as e:  # PayloadFormatError is one
            text = ""
            problems.append(f"seq {row['seq']}: payload is not valid JSON ({e})")
        digest = _chain_hash(prev, row["seq"], row["id"], row["kit"], row["type"], text, row["hlc"],
                             row["wall_time"], row["clock_synced"])
        if digest != row["hash"]:
            problems.append(f"seq {row['seq']}: hash does not match its contents and the row before")
        prev = row["hash"]
    return count, problems


def rebuild(db: Database, features: list) -> dict[str, int]:
    """Empty every feature's projection tables and replay the ledger into them, in one transaction.

    Refuses while services hold the database. Reference documents are left alone. Refuses a truncated
    ledger (LedgerTruncated): its early events are only at HQ, and replaying the rest from empty tables
    would make projections that lack them (a door that forgets who was admitted), so the tables stay.
    """
    cp = checkpoint(db.conn)
    if cp is not None:
        raise LedgerTruncated(
            f"the ledger was truncated through seq {cp.seq} on {cp.truncated_at[:10]} (HQ holds those events): "
            "the kit's tables cannot be rebuilt from the events it still has, so they were left as they are")
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
