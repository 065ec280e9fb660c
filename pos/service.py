"""The pos service: owns the receipt printer, prints the durable queue, announces sales on the bus.

- Prints queued jobs in order with a fresh printer connection each; marks them done. While the
  printer is offline or out of paper it retries every ``pos.printer.retry_seconds`` and reports
  health ``degraded`` with the reason, and ``pos/state`` says how many receipts are waiting.
- Takes print documents from other features on ``fieldkit/<kit>/pos/cmd/print`` (kit/topics.py) and
  answers on ``pos/event/print`` with the request's id: queued, printed or rejected.
- Takes ``pos/cmd/reprint`` {"id", "receipt"}.
- Imports catalogues and pickup lists the sync agent announces on ``sync/event/document``.
- Publishes every ``pos.sale`` / ``pos.refund`` in the ledger on ``pos/event/sale``, whoever made it
  (the web process or ``fieldkit pos sell``).
"""

from __future__ import annotations

import json
import logging
import time

from drivers.base import DeviceUnavailable
from drivers.printer import PrinterStatus, open_printer, profile_info, render
from kit import payloads, topics
from kit.event_codec import unpack
from kit.payloads import Field, items, mapping, number, text
from kit.service import ServiceContext
from kit.sitelink import Channel, PeerEvent, SiteLink
from pos import drops, layout, pickups, printqueue, receipts

log = logging.getLogger("fieldkit.pos")
PRINT_FIELDS = {"title": text(200), "lines": items(2000)}
REPRINT_FIELDS = {"receipt": text(80, required=True)}
SLOT_FIELDS = {"slot": text(80, required=True), "runsheet": text(64), "index": Field(int), "drop": mapping()}
CHECK_DROP_FIELDS = {"name": text(60, required=True), "sku": text(64, required=True), "price_cents": Field(int),
                     "quantity": Field(int), "minutes": number()}
STATUS_EVERY = 15.0  # seconds between printer checks while the queue is empty
PRUNE_EVERY = 60.0  # seconds between looks for printed jobs past their retention
PRUNE_BATCH = 200  # jobs deleted per short transaction, one batch per loop turn
# Pruning and giving pages back are maintenance: they wait for the merch table to go quiet (no receipt
# for a few seconds), so no sale meets their write lock or their fsync. A table that never pauses still
# gets one batch every PRUNE_LONGEST_WAIT, so the file cannot grow through a long rush.
PRUNE_QUIET = 3.0
PRUNE_LONGEST_WAIT = 300.0
PRUNE_TURN = 0.25  # seconds of batches in one loop turn while it is quiet
WINDOW_GRACE_SECONDS = 120.0  # a pickup window that opened longer ago than this is not announced


class PosService:
    def __init__(self, ctx: ServiceContext):
        self.ctx = ctx
        self.kit = ctx.config.kit_id
        self.profile = ctx.config["pos.printer.profile"]
        self.retry = float(ctx.config["pos.printer.retry_seconds"])
        self.last_seq = ctx.db.scalar("SELECT COALESCE(MAX(seq), 0) FROM events") or 0
        self.next_window_check = 0.0
        self.next_drop_check = 0.0
        self.printer_status: PrinterStatus | None = None
        self.next_attempt = 0.0
        self.next_status = 0.0
        self.published_state: dict | None = None
        self.printed_for: dict[int, str] = {}  # job id → cmd/print request id awaiting "printed"
        self.retention_hours = max(0.0, float(ctx.config["pos.print_retention_hours"]))
        self.next_prune = 0.0
        self.newest_job: int | None = None  # the newest print job seen, and when it was first seen
        self.last_job_at = float("-inf")
        self.last_prune_at = time.monotonic()
        # Drops are the site's: their events travel to and from the other merch kits on the site link.
        self.link = SiteLink(ctx.db, ctx.ledger, ctx.bus, ctx.config.site, self.kit)
        self.link.register(Channel("pos", drops.DROP_TYPES, self._validate_peer, self._store_peer, catchup_seconds=15.0))

    def _validate_peer(self, event: PeerEvent) -> str | None:
        return drops.peer_payload_problem(event.type, event.payload)

    def _store_peer(self, conn, event: PeerEvent) -> bool:
        stored = drops.store_event(conn, event.id, event.origin_kit, event.type, event.hlc, event.payload)
        if stored:
            log.info("event=peer_drop_event origin=%s type=%s", event.origin_kit, event.type)
        return stored

    # --- bus commands ---------------------------------------------------------------------------
    def on_print(self, _topic: str, msg: dict) -> None:
        rid = str(msg.get("id") or "")[:80]
        source = str(msg.get("source") or "unknown")[:40]
        try:
            if not rid:
                raise layout.PrintDocumentError("a print request needs an 'id'")
            lines = layout.validate_document(msg)
            with self.ctx.db.transaction() as conn:
                job = printqueue.enqueue(conn, f"cmd:{source}:{rid}", source, str(msg.get("title") or f"from {source}"),
                                         lines, clock=self.ctx.clock)
        except layout.PrintDocumentError as e:
            log.warning("event=print_rejected source=%s id=%s reason=%r", source, rid, str(e))
            self._answer({"id": rid, "status": "rejected", "error": str(e)})
            return
        if job is not None:
            self.printed_for[job] = rid
        log.info("event=print_queued source=%s id=%s job=%s", source, rid, job)
        self._answer({"id": rid, "status": "queued", "job": job, "queued": printqueue.depth(self.ctx.db)})
        self.next_attempt = 0.0

    def on_reprint(self, _topic: str, msg: dict) -> None:
        rid = str(msg.get("id") or "")[:80]
        try:
            job = receipts.reprint(self.ctx.db, self.ctx.config, str(msg.get("receipt", ""))[:80], clock=self.ctx.clock)
        except LookupError as e:
            self._answer({"id": rid, "status": "rejected", "error": str(e)})
            return
        self._answer({"id": rid, "status": "queued", "job": job})
        self.next_attempt = 0.0

    def on_document(self, _topic: str, msg: dict) -> None:
        """A catalogue or pickup list the sync agent downloaded from HQ: import it through our importer."""
        from pathlib import Path

        from kit.documents import DocumentError, import_document

        kind = msg.get("kind")
        if kind not in ("pos.catalogue", "pos.pickups") or msg.get("applied"):
            return  # the sync agent already imported it through the same importer
        path = Path(str(msg.get("path") or ""))
        try:
            # Only files the sync agent stored in its download folder; never any path the bus names.
            path = payloads.downloaded_document(self.ctx.config, msg)
            data = path.read_bytes()
            _, report = import_document(self.ctx.config, self.ctx.db, kind, data, path.name, source="hq",
                                        source_version=str(msg.get("source_version") or msg.get("version") or ""))
        except ValueError as e:
            payloads.refuse(_topic, msg, str(e))
            return
        except (OSError, DocumentError) as e:
            log.warning("event=document_refused kind=%s path=%s reason=%r", kind, path, str(e))
            return
        log.info("event=document_applied kind=%s %s", kind, report.summary().replace(", ", " "))

    def refused(self, _topic: str, answer: dict) -> None:
        self._answer(answer)

    def _answer(self, payload: dict) -> None:
        self.ctx.bus.publish(topics.event(self.kit, "pos", "print"), payload, qos=1)

    # --- the loop -------------------------------------------------------------------------------
    def announce_sales(self) -> None:
        rows = self.ctx.db.query("SELECT seq, type, payload FROM events WHERE seq > ? AND type IN ('pos.sale', 'pos.refund')"
                                 " ORDER BY seq LIMIT 500", (self.last_seq,))
        for r in rows:
            p = json.loads(unpack(r["payload"]))
            self.ctx.bus.publish(topics.event(self.kit, *topics.POS_SALE), {
                "receipt": p["receipt"], "kind": p["kind"], "total_cents": p["total_cents"], "currency": p["currency"],
                "items": [{"sku": ln["sku"], "qty": ln["qty"]} for ln in p["lines"]], "seq": r["seq"], "at": p["at"],
            }, qos=1)
        if rows:
            self.last_seq = rows[-1]["seq"]
        else:
            self.last_seq = max(self.last_seq, self.ctx.db.scalar("SELECT COALESCE(MAX(seq), 0) FROM events") or 0)

    def announce_pickup_windows(self) -> list[dict]:
        """A pickup window opened (the cue sheet's ``pickup`` trigger): once each, also across restarts.

        Windows that opened while the kit was off longer than two minutes are not announced late.
        """
        now = self.ctx.clock.time()
        if now < self.next_window_check:
            return []
        self.next_window_check = now + 1.0
        opening = pickups.windows_opening(self.ctx.db.conn, now - WINDOW_GRACE_SECONDS, now)
        if not opening:
            return []
        with self.ctx.db.transaction() as conn:
            conn.executemany("INSERT OR IGNORE INTO pos_pickup_windows_announced (opens_at, announced_at) VALUES (?, ?)",
                             [(opens, now) for opens, _ in opening])
        out = [{"when": "opens", "opens_at": opens, "orders": n} for opens, n in opening]
        for message in out:
            self.ctx.bus.publish(topics.event(self.kit, *topics.POS_PICKUP_WINDOW), message, qos=1)
            log.info("event=pickup_window_open opens_at=%d orders=%d", message["opens_at"], message["orders"])
        return out

    def announce_drops(self) -> list[dict]:
        """A drop's moments on ``pos/event/drop`` (the cue sheet's ``drop`` trigger), each once, across restarts:
        started, last_minute, sold_out, ended; and oversold, flagged to the lead when the site sold more
        units than the drop had (two kits sold the last ones while they could not see each other)."""
        now = self.ctx.clock.time()
        if now < self.next_drop_check:
            return []
        self.next_drop_check = now + 0.5
        conn = self.ctx.db.conn
        views = [d.view(now) for d in drops.drops(conn)]
        if not views:
            return []
        done = {tuple(r) for r in conn.execute("SELECT drop_id, moment FROM pos_drop_moments")}
        due = []
        for v in views:
            phase = v["phase"]
            moments = []
            if phase != "upcoming":
                moments.append("started")
            if phase == "open" and v["ends_at"] - now <= drops.LAST_MINUTE_SECONDS:
                moments.append("last_minute")
            if v["sold"] >= v["quantity"]:
                moments.append("sold_out")
            if phase in ("ended", "stopped", "sold_out"):
                moments.append("ended")
            if v["oversold"]:
                moments.append("oversold")
            if v["tickets_reused"]:
                moments.append("member_ticket_reused")
            due += [(v, m) for m in moments if (v["drop_id"], m) not in done]
        if not due:
            return []
        with self.ctx.db.transaction() as tx:
            tx.executemany("INSERT OR IGNORE INTO pos_drop_moments (drop_id, moment, announced_at) VALUES (?,?,?)",
                           [(v["drop_id"], m, now) for v, m in due])
        out = []
        for v, m in due:
            message = {"when": m, "drop": v["name"], "drop_id": v["drop_id"], "sku": v["sku"], "left": v["left"],
                       "sold": v["sold"], "quantity": v["quantity"], "ends_at": v["ends_at"], "oversold": v["oversold"]}
            self.ctx.bus.publish(topics.event(self.kit, *topics.POS_DROP), message, qos=1)
            (log.warning if m in ("oversold", "member_ticket_reused") else log.info)("event=drop_%s name=%r sold=%d quantity=%d", m, v["name"],
                                                             v["sold"], v["quantity"])
            out.append(message)
        return out

    def on_slot(self, _topic: str, msg: dict) -> None:
        """A run-sheet slot that opens a drop (lead/event/slot with "drop"): open it here, unless a peer did."""
        spec = msg.get("drop")
        if not isinstance(spec, dict):
            return
        name = str(spec.get("name", ""))[:60]
        drop_id = topics.slot_drop_id(str(msg.get("runsheet", ""))[:64], msg.get("index") if isinstance(msg.get("index"), int) else -1)
        try:
            with self.ctx.db.transaction() as conn:
                view = drops.start_drop(conn, self.ctx.ledger, name=name, sku=str(spec.get("sku", ""))[:64],
                                        price_cents=spec.get("price_cents"), quantity=spec.get("quantity"),
                                        minutes=spec.get("minutes"), by=f"runsheet:{str(msg.get('slot', ''))[:40]}",
                                        drop_id=drop_id, members_minutes=spec.get("members_minutes"),
                                        member_types=spec.get("member_types") if isinstance(spec.get("member_types"), list)
                                        else None)
            self.link.wake.set()
            log.info("event=slot_drop_opened drop=%r slot=%r", view["name"], msg.get("slot"))
        except (drops.DropError, TypeError, ValueError) as e:
            log.warning("event=slot_drop_refused drop=%r slot=%r reason=%r", name, msg.get("slot"), str(e))
            self.ctx.bus.publish(topics.event(self.kit, *topics.POS_DROP),
                                 {"when": "refused", "drop": name, "slot": str(msg.get("slot", ""))[:80], "reason": str(e)},
                                 qos=1)

    def on_check_drop(self, _topic: str, msg: dict) -> None:
        """``pos/cmd/check_drop``: would this drop open here (the SKU sells, the price and quantity are sane)?"""
        try:
            drops.check_drop(self.ctx.db.conn, self.ctx.clock.time(), name=str(msg.get("name", ""))[:60],
                             sku=str(msg.get("sku", ""))[:64], price_cents=msg.get("price_cents"),
                             quantity=msg.get("quantity"), minutes=msg.get("minutes"))
            answer = {"ok": True}
        except (drops.DropError, TypeError, ValueError) as e:
            answer = {"ok": False, "error": str(e)}
        self.ctx.bus.publish(topics.event(self.kit, "pos", "check_drop"), {"id": str(msg.get("id", ""))[:80], **answer})

    def prune_printed(self) -> int:
        """One small batch of printed jobs past retention, then their pages back: never a long lock on a sale."""
        now = time.monotonic()
        if now < self.next_prune:
            return 0
        newest = self.ctx.db.scalar("SELECT MAX(id) FROM pos_print_jobs")  # a sale or a reprint queued one
        if newest != self.newest_job:
            self.newest_job, self.last_job_at = newest, now
        selling = now - self.last_job_at < PRUNE_QUIET
        if selling and now - self.last_prune_at < PRUNE_LONGEST_WAIT:
            return 0  # later
        self.last_prune_at = now
        total = 0
        while True:  # batches back to back for up to PRUNE_TURN while no new job appears
            deleted = printqueue.prune_printed(self.ctx.db, self.retention_hours, PRUNE_BATCH, clock=self.ctx.clock)
            freed = printqueue.give_back_pages(self.ctx.db) if deleted else 0
            total += deleted
            if deleted:
                log.info("event=print_jobs_pruned deleted=%d pages_freed=%d retention_hours=%s",
                         deleted, freed, self.retention_hours)
            if deleted < PRUNE_BATCH:  # caught up: look again later
                self.next_prune = time.monotonic() + PRUNE_EVERY
                return total
            if selling or time.monotonic() - now > PRUNE_TURN or self.ctx.stopping.is_set() \
                    or self.ctx.db.scalar("SELECT MAX(id) FROM pos_print_jobs") != self.newest_job:
                return total  # the next loop turn takes the next batch

    def print_queue(self) -> None:
        now = time.monotonic()
        jobs = printqueue.queued(self.ctx.db, limit=10)
        if not jobs:
            if now >= self.next_status:
                self.next_status = now + STATUS_EVERY
                self._set_status(self._status())
            return
        if now < self.next_attempt:
            return
        try:
            printer = open_printer(self.ctx.config)
        except DeviceUnavailable as e:
            self._set_status(PrinterStatus(False, "unknown", str(e)))
            self.next_attempt = now + self.retry
            return
        for job in jobs:
            if self.ctx.stopping.is_set():
                return
            try:
                data = render(job["document"], self.profile)
            except DeviceUnavailable as e:  # python-escpos itself is missing: every job waits for the fix
                self._set_status(PrinterStatus(False, "unknown", str(e)))
                self.next_attempt = time.monotonic() + self.retry
                return
            except Exception as e:  # a document the printer can never print must not block the others
                log.error("event=print_unprintable job=%s error=%r", job["id"], str(e))
                printqueue.mark_unprintable(self.ctx.db, job["id"], f"cannot render: {e}")
                continue
            try:
                printer.send(data)
            except DeviceUnavailable as e:
                printqueue.mark_attempt_failed(self.ctx.db, job["id"], str(e))
                log.warning("event=print_waiting job=%s receipt=%s reason=%r", job["id"], job["receipt"], str(e))
                self._set_status(_status_from_error(e))
                self.next_attempt = time.monotonic() + self.retry
                return
            printqueue.mark_done(self.ctx.db, job["id"], len(data))
            log.info("event=printed job=%s receipt=%s bytes=%d", job["id"], job["receipt"], len(data))
            self._answer({"id": self.printed_for.pop(job["id"], None), "job": job["id"], "receipt": job["receipt"],
                          "status": "printed"})
            self.ctx.beat()
        self._set_status(PrinterStatus(True, "ok"))

    def _status(self) -> PrinterStatus:
        try:
            return open_printer(self.ctx.config).status()
        except DeviceUnavailable as e:
            return PrinterStatus(False, "unknown", str(e))

    def _set_status(self, status: PrinterStatus) -> None:
        queued = printqueue.depth(self.ctx.db)
        state = {"printer": "online" if status.ready else ("no_paper" if status.paper == "out" else "offline"),
                 "paper": status.paper, "queued": queued, "reason": status.reason}
        if state != self.published_state:
            self.published_state = state
            self.ctx.bus.publish(topics.state(self.kit, "pos"), state, retain=True, qos=1)
            if status.ready:
                self.ctx.health("ok", printer="online", queued=queued)
            else:
                reason = status.reason or "Receipt printer unavailable; receipts will queue"
                if queued:
                    reason += f" ({queued} waiting)"
                self.ctx.health("degraded", reason=reason, printer=state["printer"], queued=queued)
        self.printer_status = status


def _status_from_error(e: Exception) -> PrinterStatus:
    from drivers.printer import PrinterOutOfPaper

    if isinstance(e, PrinterOutOfPaper):
        return PrinterStatus(True, "out", str(e))
    return PrinterStatus(False, "unknown", str(e))


def _own_printer(ctx: ServiceContext):
    """One process prints: a second pos service (systemd and `fieldkit up` at once) would print every receipt twice."""
    import fcntl

    path = ctx.config.data_dir / "pos-printer.lock"
    fd = open(path, "a+")  # noqa: SIM115 (held for the life of the service)
    while not ctx.stopping.is_set():
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            ctx.health("degraded", reason="another pos service owns the receipt printer; this one waits")
            log.warning("event=printer_owned_elsewhere lock=%s", path)
            ctx.sleep(5.0)
    fd.close()
    return None


def run(ctx: ServiceContext) -> None:
    lock = _own_printer(ctx)
    if lock is None:
        return
    service = PosService(ctx)
    try:
        profile_info(service.profile)
    except DeviceUnavailable as e:
        ctx.health("degraded", reason=str(e))
    for topic, fields, handler in (
        (topics.cmd(service.kit, *topics.POS_PRINT), PRINT_FIELDS, service.on_print),
        (topics.cmd(service.kit, "pos", "reprint"), REPRINT_FIELDS, service.on_reprint),
        (topics.event(service.kit, *topics.SYNC_DOCUMENT), payloads.DOCUMENT_EVENT, service.on_document),
        (topics.cmd(service.kit, "pos", "check_drop"), CHECK_DROP_FIELDS, service.on_check_drop),
    ):
        ctx.bus.subscribe(topic, payloads.checked(fields, handler, service.refused), qos=1)
    # An event is not a request: a malformed one is logged and dropped, never answered.
    ctx.bus.subscribe(topics.event(service.kit, *topics.LEAD_SLOT), payloads.checked(SLOT_FIELDS, service.on_slot), qos=1)
    service.link.start()
    ctx.health("ok")
    log.info("event=pos_service_started backend=%s profile=%s", ctx.config.backend("pos.printer.backend"), service.profile)
    try:
        while ctx.sleep(0.2):
            service.announce_sales()
            service.announce_pickup_windows()
            service.announce_drops()
            service.link.pump()
            service.print_queue()
            service.prune_printed()  # the WAL is folded in by the database's own thread (kit/db.py)
    finally:
        lock.close()
