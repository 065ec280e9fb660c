"""HQ's documents for the kits of a site, fetched by the hub and passed on over the site link.

A kit that never reaches HQ still gets its attendee list, catalogue or run-sheet: the hub (its relay
token, sync/hq/relay.py) asks HQ for each mirrored kit's manifest, downloads what that kit has not
acknowledged, keeps it on disk and publishes it to the kit in parts that fit the broker's message limit
(QoS 1). The kit puts the parts together, checks the size and sha256, stores and applies the document
exactly as one it downloaded itself (sync/documents_pull.py: the same importers refuse a bad file), and
acknowledges its HQ id, also for one it already had. What is not acknowledged is sent again after
RESEND_SECONDS. A kit that also reaches HQ itself skips what it already holds, by HQ id.

Parts arrive from the network: each field is checked, parts of one document must agree, a document is
at most MAX_DOCUMENT_BYTES, and at most MAX_PENDING are put together at once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import threading
import time
from collections import deque
from pathlib import Path

from kit import topics
from kit.files import write_durably
from kit.sitepeer import valid_kit_id
from sync.client import BatchRejected, HQRejectsKit, SyncError

log = logging.getLogger("fieldkit.sync.relay_docs")

PART_BYTES = 512 * 1024  # raw bytes per message: base64 makes it ~700 KB, under the 1 MiB broker limit
MAX_DOCUMENT_BYTES = 32 * 1024 * 1024  # HQ's own limit for a document is smaller
MAX_PARTS = MAX_DOCUMENT_BYTES // PART_BYTES
MAX_PENDING = 4
PASS_SECONDS = 30.0  # how often the hub asks HQ for the site's kits' manifests
RESEND_SECONDS = 120.0
KIND_RE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def doc_topic(site: str, kit: str) -> str:
    return f"{topics.SITE_ROOT}/{site}/relay_doc/{kit}"


def ack_topic(site: str, kit: str = "+") -> str:
    return f"{topics.SITE_ROOT}/{site}/relay_doc_ack/{kit}"


def parts(meta: dict, data: bytes) -> list[dict]:
    """The messages that carry one document (at least one, for an empty file too)."""
    count = max(1, -(-len(data) // PART_BYTES))
    head = {k: meta[k] for k in ("id", "kind", "version", "filename", "sha256")} | {
        "scope": str(meta.get("scope") or ""), "size": len(data), "parts": count}
    return [head | {"part": i, "data": base64.b64encode(data[i * PART_BYTES:(i + 1) * PART_BYTES]).decode()}
            for i in range(count)]


def check_part(msg: object) -> dict:
    """A part's fields, or ValueError saying what is wrong with it."""
    if not isinstance(msg, dict):
        raise ValueError("not an object")
    want = {"id": int, "kind": str, "version": int, "filename": str, "sha256": str, "scope": str, "size": int,
            "parts": int, "part": int, "data": str}
    for name, kind in want.items():
        if not isinstance(msg.get(name), kind) or isinstance(msg.get(name), bool):
            raise ValueError(f"{name} missing or not {kind.__name__}")
    if not 1 <= msg["id"] < 2**31 or not 1 <= msg["version"] < 2**31:
        raise ValueError("id or version out of range")
    if not KIND_RE.match(msg["kind"]) or not SHA_RE.match(msg["sha256"]):
        raise ValueError("bad kind or sha256")
    if not 0 < len(msg["filename"]) <= 200 or len(msg["scope"]) > 10:
        raise ValueError("bad filename or scope")
    if not 0 <= msg["size"] <= MAX_DOCUMENT_BYTES or not 1 <= msg["parts"] <= MAX_PARTS + 1:
        raise ValueError("document too large")
    if not 0 <= msg["part"] < msg["parts"] or len(msg["data"]) > PART_BYTES * 4 // 3 + 4:
        raise ValueError("bad part")
    try:
        chunk = base64.b64decode(msg["data"], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("data is not base64") from None
    return {**msg, "data": chunk}


class DocumentReceiver:
    """A kit's side: documents the hub passes on, put together on the bus thread, stored by ``pump``."""

    def __init__(self, config, db, bus):
        self.config, self.db, self.bus = config, db, bus
        self.kit, self.site = config.kit_id, config.site
        self._lock = threading.Lock()
        self._pending: dict[int, dict] = {}
        self._done: deque[tuple[dict, bytes]] = deque()
        self.wake = threading.Event()  # the mirror loop's: set when a document is whole

    def start(self) -> None:
        self.bus.subscribe(doc_topic(self.site, self.kit), self.on_part, qos=1, max_bytes=1024 * 1024)

    def on_part(self, _topic: str, msg: object) -> None:
        try:
            part = check_part(msg)
        except ValueError as e:
            log.warning("event=relay_doc_refused kit=%s reason=%r", self.kit, str(e))
            return
        key = ("kind", "version", "filename", "sha256", "scope", "size", "parts")
        with self._lock:
            doc = self._pending.get(part["id"])
            if doc is None or any(doc["meta"][k] != part[k] for k in key):
                if len(self._pending) >= MAX_PENDING:
                    self._pending.pop(next(iter(self._pending)))  # the oldest unfinished one starts over
                doc = self._pending[part["id"]] = {"meta": {k: part[k] for k in ("id", *key)}, "chunks": {}}
            doc["chunks"][part["part"]] = part["data"]
            if len(doc["chunks"]) < doc["meta"]["parts"]:
                return
            del self._pending[part["id"]]
        data = b"".join(doc["chunks"][i] for i in range(doc["meta"]["parts"]))
        meta = doc["meta"]
        if len(data) != meta["size"] or hashlib.sha256(data).hexdigest() != meta["sha256"]:
            log.warning("event=relay_doc_refused kit=%s id=%d reason='size or sha256 does not match'",
                        self.kit, meta["id"])
            return
        with self._lock:
            self._done.append((meta, data))
        self.wake.set()

    def pump(self) -> int:
        """Store and apply what arrived whole (never on the bus thread: an import can take seconds)."""
        from sync.documents_pull import store_document

        stored = 0
        while True:
            with self._lock:
                item = self._done.popleft() if self._done else None
            if item is None:
                return stored
            meta, data = item
            held = self.db.scalar("SELECT 1 FROM sync_documents WHERE hq_id = ?", (meta["id"],))
            if not held:
                outcome = store_document(self.config, self.db, self.bus, meta, data)
                log.info("event=relay_doc_stored kit=%s id=%d kind=%s applied=%s", self.kit, meta["id"],
                         meta["kind"], outcome["applied"])
                stored += 1
            self.bus.publish(ack_topic(self.site, self.kit), {"id": meta["id"]}, qos=1)


class DocumentRelay:
    """The hub's side: each mirrored kit's documents from HQ, passed on until that kit acknowledges them."""

    def __init__(self, config, hub, bus, folder: Path):
        self.config, self.hub, self.bus, self.folder = config, hub, bus, folder
        self._lock = threading.Lock()
        self.acked: dict[str, set[int]] = {}
        self.sent_at: dict[tuple[str, int], float] = {}
        self.next_pass = 0.0
        self.kits: list[str] = []

    def start(self) -> None:
        self.bus.subscribe(ack_topic(self.config.site), self.on_ack, qos=1)

    def on_ack(self, topic: str, msg: object) -> None:
        kit = topic.rsplit("/", 1)[-1]
        doc_id = msg.get("id") if isinstance(msg, dict) else None
        if not valid_kit_id(kit) or not isinstance(doc_id, int) or isinstance(doc_id, bool):
            log.warning("event=relay_doc_ack_refused topic=%s", topic[:120])
            return
        with self._lock:
            self.acked.setdefault(kit, set()).add(doc_id)

    def pass_on(self, client, now: float | None = None) -> int:
        """Once every PASS_SECONDS: publish each document a kit lacks; returns how many were sent."""
        now = time.monotonic() if now is None else now
        kits = sorted(row["kit"] for row in self.hub.kits() if row["kit"] != self.config.kit_id)
        if now < self.next_pass and kits == self.kits:  # a kit new to the mirror is served at once
            return 0
        self.next_pass, self.kits = now + PASS_SECONDS, kits
        sent = 0
        for kit in kits:  # the hub's own documents it downloads itself
            try:
                sent += self._pass_on_kit(client, kit, now)
            except (HQRejectsKit, BatchRejected) as e:  # this kit only (another site's, disabled): the rest go on
                log.warning("event=relay_docs_refused kit=%s reason=%r", kit, str(e)[:200])
        return sent

    def _pass_on_kit(self, client, kit: str, now: float) -> int:
        sent = 0
        for meta in client.manifest(origin=kit):
            with self._lock:
                acked = meta["id"] in self.acked.get(kit, set())
            if acked or now - self.sent_at.get((kit, meta["id"]), -RESEND_SECONDS) < RESEND_SECONDS:
                continue
            data = self._content(client, kit, meta)
            for message in parts(meta, data):
                self.bus.publish(doc_topic(self.config.site, kit), message, qos=1)
            self.sent_at[(kit, meta["id"])] = now
            log.info("event=relay_doc_sent kit=%s id=%d kind=%s bytes=%d", kit, meta["id"], meta["kind"],
                     len(data))
            sent += 1
        return sent

    def _content(self, client, kit: str, meta: dict) -> bytes:
        """HQ's bytes, downloaded once and kept (a kit out of reach for an hour costs no second download)."""
        path = self.folder / f"{int(meta['id']):08d}.bin"
        try:
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() == meta["sha256"]:
                return data
        except OSError:
            pass
        data = client.download(meta["id"], origin=kit)
        if hashlib.sha256(data).hexdigest() != meta["sha256"]:
            raise SyncError(f"document {meta['kind']} v{meta['version']} for {kit} arrived damaged")
        write_durably(path, data)
        return data
