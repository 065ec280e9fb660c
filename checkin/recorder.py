"""Group commit for scans: many scans waiting at once share one durable commit.

Every scan must be on disk (synchronous=FULL) before its verdict is shown, and an fsync costs
milliseconds on an SD card. The thread that finds the recorder free commits itself and every scan
waiting at that moment in one transaction (each in its own savepoint, decided in order, so a
duplicate inside the batch is still refused); scans arriving meanwhile wait, are answered when a
commit holds them, and the first of them not yet recorded commits the next batch. A lone scan is committed at once on its own thread: no hand-off
to a writer thread, no waiting for a batch to fill. The recorder keeps one connection of its own, so
its statements stay prepared in that connection's cache from scan to scan.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass

from checkin.scans import log_scan, record_in
from checkin.validate import DoorRules, KeyRing
from kit.db import Database
from kit.ledger import Ledger

log = logging.getLogger("fieldkit.checkin.recorder")


@dataclass(slots=True)
class _Pending:
    payload: str | bytes
    source: str
    direction: str | None
    done: bool = False
    result: dict | None = None
    error: BaseException | None = None


class ScanRecorder:
    def __init__(self, db: Database, ledger: Ledger, rules: DoorRules, keyring: KeyRing | None = None,
                 max_batch: int = 64):
        self.db, self.ledger, self.rules = db, ledger, rules
        self.keyring = keyring or KeyRing()
        self.max_batch = max_batch
        self._waiting: deque[_Pending] = deque()
        self._cond = threading.Condition()  # guards _waiting and _committing; notified after each commit
        self._committing = False
        self._conn_lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self.batches = 0

    def record(self, payload: str | bytes, *, source: str = "api", direction: str | None = None,
               timeout: float = 30.0) -> dict:
        """Validate and durably record one scan; returns its verdict (as ``record_scan``)."""
        item = _Pending(payload, source, direction)
        deadline = time.monotonic() + timeout
        with self._cond:
            self._waiting.append(item)
            while self._committing and not item.done:
                left = deadline - time.monotonic()
                if left <= 0 and item in self._waiting:  # nobody took it: it is not recorded
                    self._waiting.remove(item)
                    raise TimeoutError("the database did not answer in time; scan again")
                self._cond.wait(max(left, 0.05))  # past the deadline: taken, its commit is ending
            if not item.done:
                self._committing = True  # this thread commits: its scan and whatever waits with it
        if not item.done:
            try:
                while not item.done:
                    with self._cond:
                        batch = [self._waiting.popleft() for _ in range(min(self.max_batch, len(self._waiting)))]
                    self._commit(batch)
            finally:
                with self._cond:  # hand over: a waiting thread whose scan is not in yet commits next
                    self._committing = False
                    self._cond.notify_all()
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result

    def close(self) -> None:
        with self._conn_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _commit(self, batch: list[_Pending]) -> None:
        with self._conn_lock:
            self._commit_locked(batch)

    def _commit_locked(self, batch: list[_Pending]) -> None:
        try:
            if self._conn is None:
                self._conn = self.db.connect()
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                if len(batch) == 1:  # alone: its failure is the transaction's, no savepoint needed
                    item = batch[0]
                    item.result = record_in(conn, self.ledger, self.rules, item.payload, keyring=self.keyring,
                                            source=item.source, direction=item.direction)
                else:
                    self._record_each(conn, batch)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except BaseException as e:  # the commit (or a lone scan) failed: nobody in the batch was recorded
            if isinstance(e, Exception):
                log.exception("event=scan_batch_failed size=%d", len(batch))
            for item in batch:
                item.result, item.error = None, item.error or e
            if not isinstance(e, Exception):
                raise
        finally:
            self.batches += 1
            for item in batch:  # every waiter gets an answer, whatever happened
                if item.result is not None:
                    log_scan(self.rules, item.result)
            with self._cond:
                for item in batch:
                    item.done = True
                self._cond.notify_all()

    def _record_each(self, conn: sqlite3.Connection, batch: list[_Pending]) -> None:
        for item in batch:
            conn.execute("SAVEPOINT scan")
            try:
                item.result = record_in(conn, self.ledger, self.rules, item.payload, keyring=self.keyring,
                                        source=item.source, direction=item.direction)
            except Exception as e:  # one scan's failure must not lose the others in the batch
                conn.execute("ROLLBACK TO scan")
                item.error = e
                log.exception("event=scan_record_failed source=%s", item.source)
            conn.execute("RELEASE scan")
