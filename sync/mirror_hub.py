"""The mirror a hub (``site.hub``, or a kit named in ``site.mirror_peers``) keeps of every kit of its site.

It is an HQ store (sync/hq/store.py on its own SQLite file, ``mirror.db`` next to the kit's database):
what is mirrored, validated, chain-checked and reported is exactly what HQ does with an upload, and
nothing of it is in the hub's own ledger, so it is never uploaded as the hub's.

Stricter than HQ: the mirror keeps each kit's chain contiguous. An event is stored only when it links
to what the mirror holds (seq 1 to the genesis hash, any other to the event before it); one that does
not follow (a lost batch before it, a seq from the future) waits for the sender to send again from
the acknowledged seq, and one whose hash does not link, or that takes a seq the mirror holds under
another id (a second chain with a mirrored kit's id), is refused with a log line.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque

import sqlalchemy as sa

from kit.ledger import GENESIS, _chain_hash
from sync import mirror_docs, mirror_docs_store, mirror_privacy
from sync.hq import schema, store, validate
from sync.mirror_proto import (
    MAX_MESSAGE_BYTES,
    MirrorRefused,
    ack_topic,
    ask_topic,
    batch_topic,
    batches,
    check_ask,
    check_batch,
    hub_topic,
    last_part,
    restore_topic,
)

log = logging.getLogger("fieldkit.sync.mirror_hub")

MAX_QUEUED = 200  # batches waiting for the loop; beyond, they are dropped (the sender sends them again)
ANNOUNCE_SECONDS = 30.0
RESTORE_BATCH = 500


def mirror_url(config) -> str:
    return f"sqlite:///{config.data_dir / 'mirror.db'}"


class MirrorHub:
    def __init__(self, config, bus, engine=None, db=None):
        self.config, self.bus, self.db = config, bus, db  # db: this kit's own, copied in for the site's report
        self.kit, self.site = config.kit_id, config.site
        self.engine = engine or store.make_engine(mirror_url(config))
        store.create_schema(self.engine)
        self._lock = threading.Lock()
        self._batches: deque[tuple[str, list]] = deque()
        self._asks: deque[tuple[str, int, str, int | None]] = deque()
        self._docs: deque[tuple[str, dict]] = deque()
        self.refused = 0
        self.wake = threading.Event()
        self._announced = 0.0
        self._known: set[str] = set()
        self.hq_upto_of = lambda _kit: 0  # set by the relay (sync/relay.py): what HQ holds of each kit

    def start(self) -> None:
        self.bus.subscribe(batch_topic(self.site), self.on_batch, qos=1, max_bytes=MAX_MESSAGE_BYTES)
        self.bus.subscribe(ask_topic(self.site), self.on_ask, qos=1)
        self.bus.subscribe(mirror_docs.doc_topic(self.site), self.on_doc, qos=1, max_bytes=MAX_MESSAGE_BYTES)

    # -- network thread: check the envelope, queue for the loop ------------------------------------------
    def on_batch(self, topic: str, msg: dict) -> None:
        kit = last_part(topic)
        if kit == self.kit:
            return  # our own ledger is ours, not a mirror's
        try:
            events = check_batch(msg, kit, self.site)
        except MirrorRefused as e:
            self._refused(kit, e.reason, str(e))
            return
        with self._lock:
            if len(self._batches) >= MAX_QUEUED:
                log.warning("event=mirror_deferred kit=%s reason=queue_full", kit)
                return
            self._batches.append((kit, events))
        self.wake.set()

    def on_doc(self, topic: str, msg: dict) -> None:
        kit = last_part(topic)
        if kit == self.kit:
            return
        try:
            doc = mirror_docs.check(msg, kit, self.site)
        except MirrorRefused as e:
            self._refused(kit, e.reason, str(e), kind="document")
            return
        with self._lock:
            if len(self._docs) < MAX_QUEUED:
                self._docs.append((kit, doc))
        self.wake.set()

    def on_ask(self, topic: str, msg: dict) -> None:
        kit = last_part(topic)
        try:
            after, nonce, doc = check_ask(msg, kit)
        except MirrorRefused as e:
            self._refused(kit, e.reason, str(e), kind="restore_request")
            return
        with self._lock:
            if len(self._asks) < MAX_QUEUED:
                self._asks.append((kit, after, nonce, doc))
        self.wake.set()

    def _refused(self, kit: str, reason: str, detail: str, kind: str = "batch") -> None:
        self.refused += 1
        log.warning("event=mirror_refused kit=%r kind=%s reason=%s detail=%r", str(kit)[:40], kind, reason, detail[:200])

    # -- the loop ------------------------------------------------------------------------------
    def pump(self) -> int:
        """Store queued batches, answer restore requests, announce; returns events stored."""
        now = time.monotonic()
        if now - self._announced >= ANNOUNCE_SECONDS and self.bus.is_connected:
            self._announced = now
            self.bus.publish(hub_topic(self.site, self.kit), {"mirror": self.kit, "site": self.site}, qos=1,
                             retain=True)
        stored = self.copy_own() if self.db is not None else 0
        while True:
            with self._lock:
                item = self._batches.popleft() if self._batches else None
            if item is None:
                break
            stored += self.store_batch(*item)
        while True:
            with self._lock:
                doc = self._docs.popleft() if self._docs else None
            if doc is None:
                break
            mirror_docs_store.keep(self.engine, *doc)
        while True:
            with self._lock:
                ask = self._asks.popleft() if self._asks else None
            if ask is None:
                break
            self.answer(*ask)
        return stored

    def held(self, kit: str, low: int, high: int) -> dict[int, tuple[str, str]]:
        cols = schema.events.c
        with self.engine.connect() as conn:
            return {r.seq: (r.id, r.hash) for r in conn.execute(
                sa.select(cols.seq, cols.id, cols.hash).where(cols.kit == kit, cols.seq.between(low, high)))}

    def upto(self, kit: str) -> tuple[int, str]:
        cols = schema.events.c
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(cols.seq, cols.hash).where(cols.kit == kit).order_by(cols.seq.desc())
                               .limit(1)).first()
        return (int(row.seq), row.hash) if row else (0, GENESIS)

    def copy_own(self) -> int:
        """This kit's own events into the store too, so the site's report covers every kit (never relayed:
        the hub uploads its own ledger itself)."""
        from kit.ledger import events_after, last_seq

        upto, _ = self.upto(self.kit)
        if last_seq(self.db) <= upto:
            return 0
        return self.store_batch(self.kit, [e.as_dict() for e in events_after(self.db, upto, 500)], ack=False)

    def store_batch(self, kit: str, records: list, ack: bool = True) -> int:
        """Keep the records that extend this kit's chain; acknowledge what is held. Returns events stored."""
        received = store.now_utc()
        rows: list[tuple[dict, dict]] = []
        for record in records:
            try:
                rows.append((validate.validate_record(record, kit, received), record))
            except ValueError as e:
                self._refused(kit, "bad_record", f"seq {validate.record_seq(record)}: {e}")
        rows.sort(key=lambda r: r[0]["seq"])
        top, top_hash = self.upto(kit)
        held = self.held(kit, rows[0][0]["seq"], rows[-1][0]["seq"]) if rows else {}
        accepted: list[dict] = []
        gap = None
        for row, record in rows:
            seq = row["seq"]
            if seq in held:
                if held[seq][0] != row["id"]:
                    self._refused(kit, "second_chain", f"seq {seq} is held under another event id: a kit with this "
                                  "id started a new ledger (restore it with `fieldkit restore --from-hub`)")
                continue
            if seq != top + 1:
                gap = gap or seq  # a lost batch before it, or a seq from the future: sent again from `top`
                continue
            if _chain_hash(top_hash, seq, row["id"], kit, row["type"], row["payload"], row["hlc"], row["wall_time"],
                           int(row["clock_synced"])) != row["hash"]:
                self._refused(kit, "chain", f"seq {seq}: its hash does not link to the event before")
                break  # nothing after a break can link either
            accepted.append(record)
            top, top_hash = seq, row["hash"]
        if gap and not accepted:
            log.info("event=mirror_gap kit=%s holds=%d got=%d", kit, top, gap)
        stored = 0
        if accepted:
            self._register(kit)
            results = store.ingest(self.engine, kit, accepted, received_at=received)
            stored = sum(r.status == "stored" for r in results)
            mirror_privacy.follow(self.engine, kit, accepted)  # the kit's erasure reaches its mirrored copy
        if ack:
            self.acknowledge(kit, gap=gap if gap and not accepted else None)
        return stored

    def _register(self, kit: str) -> None:
        if kit in self._known:
            return
        with self.engine.connect() as conn:
            known = conn.execute(sa.select(schema.kits.c.kit).where(schema.kits.c.kit == kit)).first()
        if known is None:
            store.add_kit(self.engine, kit, self.site)  # its token is never used: the mirror is no HQ
        self._known.add(kit)

    def acknowledge(self, kit: str, gap: int | None = None) -> None:
        upto, digest = self.upto(kit)
        ack = {"mirror": self.kit, "kit": kit, "upto": upto, "mark": upto, "missing": [], "hash": digest,
               "hq_upto": min(upto, self.hq_upto_of(kit)), "at": time.time()}
        if gap:  # "send again from upto": a batch before this one was lost
            ack["gap"] = gap
        self.bus.publish(ack_topic(self.site, kit, self.kit), ack, qos=1, retain=True)

    def events(self, kit: str, after: int, limit: int = RESTORE_BATCH) -> list[dict]:
        cols = schema.events.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(cols.seq, cols.id, cols.kit, cols.type, cols.payload, cols.hlc,
                                          cols.wall_time, cols.clock_synced, cols.hash)
                                .where(cols.kit == kit, cols.seq > after).order_by(cols.seq).limit(limit)).all()
        return [{"seq": r.seq, "id": r.id, "kit": r.kit, "type": r.type, "payload": json.loads(r.payload),
                 "hlc": r.hlc, "wall_time": r.wall_time, "clock_synced": bool(r.clock_synced), "hash": r.hash}
                for r in rows]

    def answer(self, kit: str, after: int, nonce: str, doc: int | None = None) -> None:
        """One batch of a kit's mirrored ledger after ``after`` (the spare asks again for the next), or
        its document number ``doc`` (one per message: each fits the broker's limit, see mirror_docs)."""
        if doc is not None:
            docs = mirror_docs_store.latest(self.engine, kit)
            self.bus.publish(restore_topic(self.site, kit),
                             {"mirror": self.kit, "kit": kit, "nonce": nonce, "doc": doc, "documents": len(docs),
                              "document": docs[doc] if doc < len(docs) else None, "events": []}, qos=1)
            return
        upto, _ = self.upto(kit)
        records = self.events(kit, after)
        first = batches(records)[0] if records else []
        self.bus.publish(restore_topic(self.site, kit), {"mirror": self.kit, "kit": kit, "nonce": nonce, "after": after,
                                                         "upto": upto, "events": first}, qos=1)
        log.info("event=mirror_restore_answered kit=%s after=%d events=%d upto=%d", kit, after, len(first), upto)

    def kits(self) -> list[dict]:
        """Per mirrored kit: events held, the highest seq, when the last arrived."""
        return [{"kit": r["kit"], "events": int(r["events"] or 0), "upto": int(r["hwm"] or 0),
                 "last_received": str(r["last_received"] or "")} for r in store.list_kits(self.engine)]
