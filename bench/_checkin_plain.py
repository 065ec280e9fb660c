"""The strongest plain alternatives bench/checkin.py compares the kit's scan path with (not a benchmark itself).

``PlainDoor``: one connection opened once, WAL, ``synchronous=FULL``, keys loaded once, one
``BEGIN IMMEDIATE`` transaction per scan doing the work any door must do — verify a signed code,
look the ticket up, check whether it is inside already, insert the scan and a hash-chained event —
and nothing else (no HLC, no clock check, no counters, no rules beyond "already in"). ``PlainGroupDoor``
is the same work behind one writer thread that commits every scan waiting at that moment at once.
"""

from __future__ import annotations

import hashlib
import json
import queue
import sqlite3
import threading
import time
import uuid

from checkin import signed

SCHEMA = """
CREATE TABLE IF NOT EXISTS plain_scans (
    seq INTEGER PRIMARY KEY, ticket_key TEXT NOT NULL, verdict TEXT NOT NULL, at REAL NOT NULL,
    name TEXT NOT NULL, ticket_type TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS plain_scans_ticket ON plain_scans(ticket_key);
CREATE TABLE IF NOT EXISTS plain_events (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, payload TEXT NOT NULL, hash TEXT NOT NULL
);
"""


class PlainDoor:
    def __init__(self, path: str, public_keys: list[tuple[str, object]]):
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(SCHEMA)
        self.keys = public_keys
        row = self.conn.execute("SELECT seq, hash FROM plain_events ORDER BY seq DESC LIMIT 1").fetchone()
        self.seq, self.prev = row if row else (0, "")

    def decide_and_insert(self, code: str) -> str:
        """One scan's reads and inserts, inside the caller's transaction."""
        c = self.conn
        try:
            known = signed.verify(code, self.keys) is not None  # a signed ticket: its signature decides
        except signed.NotSignedTicket:
            known = None  # a list secret: the guest list decides
        row = c.execute("SELECT name, ticket_type, status FROM checkin_tickets WHERE ticket_key = ?", (code,)).fetchone()
        inside = c.execute("SELECT 1 FROM plain_scans WHERE ticket_key = ? AND verdict = 'admit' LIMIT 1",
                           (code,)).fetchone()
        if not (row is not None if known is None else known):
            verdict = "unknown"
        else:
            verdict = "already_in" if inside else "admit"
        now = time.time()
        c.execute("INSERT INTO plain_scans (ticket_key, verdict, at, name, ticket_type) VALUES (?,?,?,?,?)",
                  (code, verdict, now, row[0] if row else "", row[1] if row else ""))
        payload = json.dumps({"ticket_key": code, "verdict": verdict, "at": now}, sort_keys=True)
        seq = self.seq + 1
        digest = hashlib.sha256(f"{self.prev}\x1f{seq}\x1f{payload}".encode()).hexdigest()
        c.execute("INSERT INTO plain_events (seq, id, payload, hash) VALUES (?,?,?,?)",
                  (seq, str(uuid.uuid4()), payload, digest))
        self.seq, self.prev = seq, digest
        return verdict

    def scan(self, code: str) -> str:
        c = self.conn
        seq, prev = self.seq, self.prev
        c.execute("BEGIN IMMEDIATE")
        try:
            verdict = self.decide_and_insert(code)
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            self.seq, self.prev = seq, prev
            raise
        return verdict

    def close(self) -> None:
        self.conn.close()


class PlainGroupDoor(PlainDoor):
    """The same work, one writer thread, one commit for everything waiting (textbook group commit)."""

    def __init__(self, path: str, public_keys: list[tuple[str, object]]):
        super().__init__(path, public_keys)
        self.queue: queue.Queue = queue.Queue()
        self.commits = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def submit(self, code: str) -> str:
        item = [code, threading.Event(), None]
        self.queue.put(item)
        item[1].wait()
        return item[2]

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                return
            batch = [first]
            while True:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            stop = batch[-1] is None
            batch = [b for b in batch if b is not None]
            self.conn.execute("BEGIN IMMEDIATE")
            for item in batch:
                item[2] = self.decide_and_insert(item[0])
            self.conn.execute("COMMIT")
            self.commits += 1
            for item in batch:
                item[1].set()
            if stop:
                return

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join(10)
        super().close()
