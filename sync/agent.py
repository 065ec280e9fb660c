"""The sync agent's work: one session uploads the ledger to HQ and pulls documents.

A session: probe HQ's health, ask for this kit's high-water mark (an HQ restored from an old backup
reports less than our cursor: rewind and send the gap again), upload the ledger in seq order in
batches, move the cursor only after HQ answered for every record of a batch, park a record HQ refuses
(with HQ's reason) instead of retrying it forever, then fetch changed documents.
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from kit import topics
from kit.config import Config
from kit.db import Database
from kit.event_codec import unpack
from kit.ledger import last_seq
from sync.client import BatchRejected, HQClient, Outgoing, SyncError, encode_batch, event_line
from sync.credentials import NotJoined, hq_credentials
from sync.documents_pull import pull_documents
from sync.fleet_status import LiveState, report_status
from sync.mirror import mirror_summary
from sync.personal_upload import upload_personal
from sync.privacy import holes_above_checkpoint

log = logging.getLogger("fieldkit.sync")
Progress = Callable[[int, int], None]  # (events handled this session, events to handle)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def retry_delay(failures: int, low: float, high: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: half fixed, half random, so many kits do not retry in step."""
    capped = min(high, low * (2 ** max(0, failures - 1)))
    return capped / 2 + (rng or random).uniform(0, capped / 2)


@dataclass
class SessionResult:
    uploaded: int = 0
    stored: int = 0
    duplicate: int = 0
    parked: int = 0
    rewound_from: int | None = None
    restored: int = 0  # events HQ said it lacked below its mark, sent again and stored
    restored_ranges: list[tuple[int, int]] = field(default_factory=list)
    documents: list[dict] = field(default_factory=list)
    personal: int = 0  # personal records HQ now holds (kit/personal.py)
    bundle: dict | None = None  # a release bundle downloaded whole and announced (sync/bundle_download.py)
    cursor: int = 0
    hwm: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class SessionBusy(SyncError):
    """Another process (the service or `fieldkit sync now`) is syncing right now."""


class SessionLock:
    """One sync session at a time per kit, across processes."""

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / "sync.lock"
        self.fd: int | None = None

    def acquire(self, wait: float = 0.0) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(self.fd)
                    self.fd = None
                    raise SessionBusy("another sync session is running") from None
                time.sleep(0.1)

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


_OUTGOING = ("SELECT seq, id, kit, type, payload, hlc, wall_time, clock_synced, hash FROM events"
             " WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?")


def outgoing_events(db: Database, after: int, limit: int, upto: int = 2**63 - 1) -> list[Outgoing]:
    """Up to ``limit`` ledger events with after < seq <= upto, as upload lines, straight from the rows."""
    return [Outgoing(r[0], r[1], event_line(r[0], r[1], r[2], r[3], unpack(r[4]), *r[5:]))
            for r in db.query(_OUTGOING, (after, upto, limit))]


class SyncAgent:
    def __init__(self, config: Config, db: Database, bus=None, publish_every: float = 0.5):
        self.config, self.db, self.bus = config, db, bus
        self.publish_every = publish_every
        self._last_publish = 0.0
        self.syncing = False
        self.progress: tuple[int, int] = (0, 0)
        self.online: bool | None = None
        self.live = LiveState()  # what the status for HQ's fleet view takes from the bus (the battery)
        self.download: dict | None = None  # an update download under way: version, done, total bytes
        if bus is not None:
            self.live.attach(bus, config.kit_id)

    # --- stored state ---------------------------------------------------------------------------
    def hq_url(self) -> str:
        return (self.config["sync.hq_url"] or "").strip().rstrip("/")

    def cursor(self) -> int:
        return int(self.db.scalar("SELECT cursor FROM sync_cursor WHERE hq_url = ?", (self.hq_url(),)) or 0)

    def _set_cursor(self, conn, cursor: int, hwm: int | None = None) -> None:
        conn.execute(
            "INSERT INTO sync_cursor (hq_url, cursor, hq_hwm, updated_at) VALUES (?,?,?,?)"
            " ON CONFLICT(hq_url) DO UPDATE SET cursor = excluded.cursor,"
            " hq_hwm = COALESCE(excluded.hq_hwm, sync_cursor.hq_hwm), updated_at = excluded.updated_at",
            (self.hq_url(), cursor, hwm, utc_now()))

    def _status(self, **values: str | None) -> None:
        with self.db.transaction() as conn:
            for key, value in values.items():
                if value is None:
                    conn.execute("DELETE FROM sync_status WHERE key = ?", (key,))
                else:
                    conn.execute("INSERT INTO sync_status (key, value) VALUES (?, ?) ON CONFLICT(key)"
                                 " DO UPDATE SET value = excluded.value", (key, value))

    def state(self) -> dict:
        """What the dashboard, `fieldkit sync status` and the retained ``sync/state`` topic show."""
        status = {r["key"]: r["value"] for r in self.db.query("SELECT key, value FROM sync_status")}
        row = self.db.query_one("SELECT cursor, hq_hwm FROM sync_cursor WHERE hq_url = ?", (self.hq_url(),))
        cursor = row["cursor"] if row else 0
        newest = last_seq(self.db)
        try:
            hq_credentials(self.config)
            configured = True
        except NotJoined:
            configured = False
        parked = self.db.query("SELECT seq, event_id, error, parked_at FROM sync_parked ORDER BY seq LIMIT 20")
        return {
            "configured": configured,
            "hq_url": self.hq_url(),
            "online": self.online,
            "syncing": self.syncing,
            "cursor": cursor,
            "last_seq": newest,
            "backlog": max(0, newest - cursor),
            "hq_hwm": row["hq_hwm"] if row else None,
            "parked": self.db.scalar("SELECT COUNT(*) FROM sync_parked") or 0,
            "parked_records": [dict(r) for r in parked],
            "last_success": status.get("last_success"),
            "last_error": status.get("last_error"),
            "last_error_at": status.get("last_error_at"),
            "last_attempt": status.get("last_attempt"),
            "progress": {"done": self.progress[0], "total": self.progress[1]},
            "mirror": mirror_summary(self.db),  # sync/mirror.py: this kit's ledger on the site's mirrors
            "update_download": self.download,
            "documents": [dict(r) for r in self.db.query(
                "SELECT kind, hq_version, filename, received_at, applied, local_version, result FROM sync_documents"
                " WHERE hq_id IN (SELECT MAX(hq_id) FROM sync_documents GROUP BY kind) ORDER BY kind")],
        }

    def publish_state(self, force: bool = True) -> dict | None:
        if self.bus is None:
            return None
        now = time.monotonic()
        if not force and now - self._last_publish < self.publish_every:
            return None
        self._last_publish = now
        state = self.state()
        self.bus.publish(topics.state(self.config.kit_id, "sync"), state, retain=True, qos=1)
        return state

    # --- a session ------------------------------------------------------------------------------
    def client(self) -> HQClient:
        url, token = hq_credentials(self.config)
        return HQClient(url, token, self.config.kit_id, self.config["sync.timeout_seconds"], self.config["sync.hq_ca_file"])

    def run_session(self, progress: Progress | None = None, lock_wait: float = 0.0,
                    stop: Callable[[], bool] | None = None) -> SessionResult:
        """One full session under the cross-process lock. Raises SyncError (and NotJoined) on failure."""
        lock = SessionLock(self.config.data_dir)
        lock.acquire(lock_wait)
        self.syncing = True
        self._status(last_attempt=utc_now())
        client = None
        try:
            client = self.client()
            try:
                result = self._session(client, progress, stop)
            except sqlite3.OperationalError as e:  # a long write elsewhere held the kit's database
                raise SyncError(f"the kit's database was busy ({e}); trying again later") from None
        except (SyncError, NotJoined) as e:
            self.online = False if not isinstance(e, NotJoined) else None
            self._status(last_error=str(e), last_error_at=utc_now())
            log.warning("event=sync_failed error=%r", str(e))
            raise
        finally:
            if client is not None:
                client.close()
            self.syncing = False
            lock.release()
            self.publish_state()
        self._status(last_success=utc_now(), last_error=None, last_error_at=None)
        self.publish_state()
        return result

    def _session(self, client: HQClient, progress: Progress | None, stop: Callable[[], bool] | None) -> SessionResult:
        client.health()
        self.online = True
        result = SessionResult()
        mark = client.mark()
        hwm = mark.hwm
        cursor = self.cursor()
        if hwm < cursor:
            # HQ lost what it had acknowledged (restored from an older backup): send the gap again.
            log.warning("event=hq_behind_cursor hwm=%d cursor=%d action=resend_gap", hwm, cursor)
            result.rewound_from = cursor
            cursor = hwm
        with self.db.transaction() as conn:
            self._set_cursor(conn, cursor, hwm)
        # Holes below the mark (rows lost or deleted at HQ): sent again before moving on. Ranges above
        # the cursor go up with the backlog anyway.
        holes = [(first, min(last, cursor)) for first, last in mark.missing if first <= cursor]
        holes = holes_above_checkpoint(self.db, holes)
        total = max(0, last_seq(self.db) - cursor) + sum(last - first + 1 for first, last in holes)
        self.progress = (0, total)
        if progress:
            progress(0, total)
        batch_size = max(1, int(self.config["sync.batch_size"]))
        if holes:
            log.warning("event=hq_missing_events ranges=%d events=%d action=resend", len(holes),
                        sum(last - first + 1 for first, last in holes))
        for first, last in holes:
            self._restore(client, first, last, batch_size, result, progress, total, stop)
        ahead: list = []  # the next batch and its body, made while HQ stores the current one

        def prepare_next(after: int) -> None:
            following = outgoing_events(self.db, after, batch_size)
            ahead[:] = [(following, encode_batch(following) if following else b"", after)]

        while not (stop and stop()):
            if ahead and ahead[0][2] == cursor:
                events, body, _ = ahead.pop()
            else:
                events, body = outgoing_events(self.db, cursor, batch_size), None
            ahead.clear()
            if not events:
                break
            cursor = self._upload(client, events, result, body=body,
                                  while_waiting=functools.partial(prepare_next, events[-1].seq))
            result.hwm = max(result.hwm, hwm)
            done = result.uploaded
            total = max(total, done + max(0, last_seq(self.db) - cursor))
            self.progress = (done, total)
            if progress:
                progress(done, total)
            self.publish_state(force=False)
        result.cursor = cursor
        if stop and stop():
            raise SyncError("stopped before the session ended; the next one carries on from the cursor")
        result.bundle = report_status(self, client, stop)
        result.personal = upload_personal(self.db, client)
        result.documents = self.pull_documents(client)
        log.info("event=sync_session_done uploaded=%d stored=%d duplicate=%d parked=%d cursor=%d documents=%d",
                 result.uploaded, result.stored, result.duplicate, result.parked, cursor, len(result.documents))
        return result

    def _restore(self, client: HQClient, first: int, last: int, batch_size: int, result: SessionResult,
                 progress: Progress | None, total: int, stop: Callable[[], bool] | None) -> None:
        """Send seqs first..last again (HQ lacks them); the cursor stays where it is."""
        seq = first - 1
        while not (stop and stop()):
            events = outgoing_events(self.db, seq, batch_size, last)
            if not events:
                break
            stored_before = result.stored
            self._upload(client, events, result, move_cursor=False)
            result.restored += result.stored - stored_before
            seq = events[-1].seq
            self.progress = (result.uploaded, total)
            if progress:
                progress(result.uploaded, total)
        result.restored_ranges.append((first, last))
        log.info("event=hq_gap_restored first=%d last=%d restored=%d", first, last, result.restored)

    def _upload(self, client: HQClient, events: list, result: SessionResult, move_cursor: bool = True,
                body: bytes | None = None, while_waiting: Callable[[], None] | None = None) -> int:
        """Send one batch (split when HQ refuses it whole); returns the new cursor.

        ``while_waiting`` runs while HQ works on the batch: the session reads and encodes the next one
        then, so the kit's work and HQ's overlap instead of taking turns (one request still in flight).
        """
        try:
            answer = client.upload(events, body, while_waiting)
        except BatchRejected as e:
            if len(events) > 1:
                log.warning("event=batch_rejected status=%s size=%d action=split", e.status, len(events))
                half = len(events) // 2
                self._upload(client, events[:half], result, move_cursor)
                return self._upload(client, events[half:], result, move_cursor)
            answers = [{"id": events[0].id, "seq": events[0].seq, "status": "refused", "error": f"HQ {e.status}: {e}"}]
            hwm = None
        else:
            answers, hwm = answer.results, answer.hwm
        refused, answered = [], []
        for event, answer_ in zip(events, answers, strict=True):
            status = answer_.get("status")
            if status == "refused":
                refused.append((event.seq, event.id, str(answer_.get("error") or "refused by HQ")[:500]))
            elif status in ("stored", "duplicate"):
                answered.append(event.seq)
                result.stored += status == "stored"
                result.duplicate += status == "duplicate"
            else:
                raise SyncError(f"HQ answered an unknown status {status!r} for seq {event.seq}")
        with self.db.transaction() as conn:
            # One statement for the batch, not one per record: parked records are rare, so first ask
            # whether any is in this batch's range at all.
            if answered and conn.execute("SELECT 1 FROM sync_parked WHERE seq BETWEEN ? AND ? LIMIT 1",
                                         (answered[0], answered[-1])).fetchone():
                conn.executemany("DELETE FROM sync_parked WHERE seq = ?", [(seq,) for seq in answered])
            for seq, event_id, error in refused:
                conn.execute(
                    "INSERT INTO sync_parked (seq, event_id, error, parked_at) VALUES (?,?,?,?)"
                    " ON CONFLICT(seq) DO UPDATE SET error = excluded.error, attempts = sync_parked.attempts + 1",
                    (seq, event_id, error, utc_now()))
                result.parked += 1
                log.warning("event=record_parked seq=%d id=%s error=%r", seq, event_id, error)
            cursor = events[-1].seq
            if move_cursor:
                self._set_cursor(conn, cursor, hwm)
        result.uploaded += len(events)
        return cursor

    # --- documents ------------------------------------------------------------------------------
    def retry_parked(self) -> int:
        """Send parked records again (after HQ was fixed): rewind the cursor to before the first one."""
        first = self.db.scalar("SELECT MIN(seq) FROM sync_parked")
        if first is None:
            return 0
        with self.db.transaction() as conn:
            self._set_cursor(conn, min(self.cursor(), int(first) - 1))
        return int(self.db.scalar("SELECT COUNT(*) FROM sync_parked"))

    def pull_documents(self, client: HQClient) -> list[dict]:
        """Download each document whose HQ id we do not have yet; store, apply if we can, announce."""
        return pull_documents(self.config, self.db, self.bus, client)


def parked_records(db: Database) -> list[dict]:
    return [dict(r) for r in db.query("SELECT * FROM sync_parked ORDER BY seq")]


def dumps(state: dict) -> str:
    return json.dumps(state, indent=2, default=str)
