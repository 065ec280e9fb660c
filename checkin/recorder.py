"""Group commit for scans: many scans waiting at once share one durable commit.

Every scan must be on disk (synchronous=FULL) before its verdict is shown, and an fsync costs
milliseconds on an SD card. When several sources or browsers scan at the same moment, one writer
thread takes every waiting scan into one transaction (each in its own savepoint, decided in order,
so a duplicate inside the batch is still refused) and answers them all after the single commit.
A lone scan is committed at once; nobody waits for a batch to fill.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field

from checkin.scans import log_scan, record_in
from checkin.validate import DoorRules, KeyRing
from kit.db import Database
from kit.ledger import Ledger
from kit.threads import start_vital

log = logging.getLogger("fieldkit.checkin.recorder")


@dataclass
class _Pending:
    payload: str | bytes
    source: str
    direction: str | None
    done: threading.Event = field(default_factory=threading.Event)
    result: dict | None = None
    error: BaseException | None = None


class ScanRecorder:
    def __init__(self, db: Database, ledger: Ledger, rules: DoorRules, keyring: KeyRing | None = None,
                 max_batch: int = 64):
        self.db, self.ledger, self.rules = db, ledger, rules
        self.keyring = keyring or KeyRing()
        self.max_batch = max_batch
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0

    def record(self, payload: str | bytes, *, source: str = "api", direction: str | None = None,
               timeout: float = 30.0) -> dict:
        """Validate and durably record one scan; returns its verdict (as ``record_scan``)."""
        self._ensure_started()
        item = _Pending(payload, source, direction)
        self._queue.put(item)
        if not item.done.wait(timeout):
            raise TimeoutError("the database did not answer in time; scan again")
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result

    def close(self) -> None:
        if self._thread:
            self._queue.put(None)
            self._thread.join(10)
            self._thread = None

    def _ensure_started(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = start_vital("checkin-recorder", self._run)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self.db.close()
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(nxt)
            self._commit(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            with self.db.transaction() as conn:
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
        except Exception as e:  # the commit itself failed: nobody in the batch was recorded
            log.exception("event=scan_batch_failed size=%d", len(batch))
            for item in batch:
                item.result, item.error = None, item.error or e
        self.batches += 1
        for item in batch:
            if item.result is not None:
                log_scan(self.rules, item.result)
            item.done.set()
