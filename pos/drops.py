"""Live drops: a quantity of one product at an offer price for a window, shared by the site's merch kits.

A drop started on any kit (``fieldkit pos drop start``, the merch lead screen) is a ledger event
shared over the site link, so it exists on every merch kit of the site; each kit sells its drop units
from its own stock. Every drop unit sold is a ``pos.drop_sold`` event in the sale's own transaction,
also shared, so every kit knows how many are left. A sale is never blocked by the network: when two
kits sold the last units while the link between them was down, both sales stand and the drop shows
``oversold by N`` to the lead (and at HQ). When the quantity is sold or the window ends, the offer ends
and the product is back at its normal price.

Events: ``pos.drop_started`` {"drop_id", "name", "sku", "price_cents", "quantity", "starts_at",
"ends_at", "by"}, ``pos.drop_stopped`` {"drop_id", "by", "at"}, ``pos.drop_sold`` {"drop_id", "qty",
"sale_id", "receipt"}. Own and peers' events are kept in ``pos_drop_events`` (one row each, never
emptied by a rebuild, so the peers' rows survive it).
"""

from __future__ import annotations

import json
import logging
import math
import re
import sqlite3
import uuid
from dataclasses import asdict, dataclass

from kit.ledger import Ledger
from pos.catalogue import CatalogueError, find_product

log = logging.getLogger("fieldkit.pos.drops")
STARTED, STOPPED, SOLD = "pos.drop_started", "pos.drop_stopped", "pos.drop_sold"
DROP_TYPES = (STARTED, STOPPED, SOLD)
MAX_MINUTES = 24 * 60
MAX_QUANTITY = 100_000
LAST_MINUTE_SECONDS = 60
NAME_RE = re.compile(r"^[\w .:'&+#-]{1,60}$")
_ID_RE = re.compile(r"^[0-9a-fA-F-]{8,64}$")


class DropError(ValueError):
    """A drop cannot be started or stopped as asked; the message says why."""


@dataclass(frozen=True)
class Drop:
    drop_id: str
    name: str
    sku: str
    price_cents: int
    quantity: int
    starts_at: float
    ends_at: float
    origin_kit: str
    stopped_at: float | None
    sold: int  # every kit's drop units, as far as this kit has heard

    @property
    def left(self) -> int:
        return max(0, self.quantity - self.sold)

    @property
    def oversold(self) -> int:
        return max(0, self.sold - self.quantity)

    def phase(self, now: float) -> str:
        if self.stopped_at is not None and self.stopped_at <= now:
            return "stopped"
        if now < self.starts_at:
            return "upcoming"
        if self.sold >= self.quantity:
            return "sold_out"
        if now >= self.ends_at:
            return "ended"
        return "open"

    def view(self, now: float) -> dict:
        d = asdict(self)
        d.update(phase=self.phase(now), left=self.left, oversold=self.oversold,
                 seconds_left=max(0.0, round(self.ends_at - now, 1)) if self.phase(now) == "open" else 0.0)
        return d


# --- the events as rows -------------------------------------------------------------------------------

def store_event(conn: sqlite3.Connection, event_id: str, origin_kit: str, type_: str, hlc: int, p: dict) -> bool:
    """Keep one drop event (this kit's, from the projection, or a peer's, from the site link)."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO pos_drop_events (event_id, origin_kit, type, drop_id, sku, price_cents, quantity, qty,"
        " starts_at, ends_at, at, name, hlc) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (event_id, origin_kit, type_, p["drop_id"], p.get("sku"), p.get("price_cents"), p.get("quantity"), p.get("qty"),
         p.get("starts_at"), p.get("ends_at"), p.get("at"), p.get("name"), hlc))
    return cur.rowcount == 1


def apply_event(conn: sqlite3.Connection, event: dict) -> None:
    """The projection of this kit's own drop events (live and during `fieldkit ledger rebuild`)."""
    store_event(conn, event["id"], event["kit"], event["type"], event["hlc"], event["payload"])


def drops(conn: sqlite3.Connection) -> list[Drop]:
    rows = conn.execute(
        "SELECT s.drop_id, s.name, s.sku, s.price_cents, s.quantity, s.starts_at, s.ends_at, s.origin_kit,"
        " (SELECT MIN(at) FROM pos_drop_events x WHERE x.drop_id = s.drop_id AND x.type = ?) AS stopped_at,"
        " (SELECT COALESCE(SUM(qty), 0) FROM pos_drop_events x WHERE x.drop_id = s.drop_id AND x.type = ?) AS sold"
        " FROM pos_drop_events s WHERE s.type = ? ORDER BY s.starts_at, s.hlc", (STOPPED, SOLD, STARTED)).fetchall()
    out, seen = [], set()
    for r in rows:  # a slot's drop opened by two kits at once (a partition): one drop, the earliest start
        if r[0] not in seen:
            seen.add(r[0])
            out.append(Drop(*r))
    return out


def active_for(conn: sqlite3.Connection, sku: str, now: float) -> Drop | None:
    """The drop a sale of ``sku`` at ``now`` sells from (the earliest started, if two kits made one each)."""
    for d in drops(conn):
        if d.sku == sku and d.phase(now) == "open":
            return d
    return None


def find(conn: sqlite3.Connection, name_or_id: str) -> Drop | None:
    matches = [d for d in drops(conn) if d.drop_id == name_or_id or d.name == name_or_id]
    return matches[-1] if matches else None


# --- what a lead does ---------------------------------------------------------------------------------

def check_drop(conn: sqlite3.Connection, now: float, *, name: str, sku: str, price_cents: int, quantity: int,
               minutes: float, starts_at: float | None = None, drop_id: str | None = None) -> float:
    """Why a drop cannot start (DropError), or its start time. Nothing is written."""
    name = (name or "").strip()
    if not NAME_RE.match(name):
        raise DropError("name the drop with 1-60 letters, digits, spaces or .:'&+#-")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= MAX_QUANTITY:
        raise DropError(f"quantity must be a whole number from 1 to {MAX_QUANTITY}")
    if isinstance(price_cents, bool) or not isinstance(price_cents, int) or price_cents < 0:
        raise DropError("the drop price must not be negative")
    if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not math.isfinite(minutes) \
            or not 0 < minutes <= MAX_MINUTES:
        raise DropError(f"minutes must be above 0 and at most {MAX_MINUTES}")
    start = now if starts_at is None else float(starts_at)
    end = start + minutes * 60
    if end <= now:
        raise DropError("that window is already over: give a start time still to come, or more minutes")
    try:
        product = find_product(conn, sku)
    except CatalogueError as e:
        raise DropError(str(e)) from None
    if not product.active:
        raise DropError(f"{product.label} ({product.sku}) is not on sale")
    for d in drops(conn):
        if d.drop_id == drop_id:
            continue
        if d.sku == product.sku and d.phase(now) in ("open", "upcoming") and d.starts_at < end and start < d.ends_at:
            raise DropError(f"drop {d.name!r} already runs on {product.sku} until {d.ends_at:.0f}: one drop per product at once")
        if d.name == name and d.phase(now) in ("open", "upcoming"):
            raise DropError(f"a drop called {name!r} is already running")
    return start


def start_drop(conn: sqlite3.Connection, ledger: Ledger, *, name: str, sku: str, price_cents: int, quantity: int,
               minutes: float, starts_at: float | None = None, by: str = "lead", drop_id: str | None = None) -> dict:
    """Start a drop (inside the caller's transaction). Refuses what would surprise the table.

    ``drop_id``: a run-sheet slot's drop has an id every kit derives alike, so the kit that opens it
    first makes it and the others find it there (started again, it is the same drop).
    """
    now = ledger.clock.time()
    existing = find(conn, drop_id) if drop_id else None
    if existing is not None:
        return existing.view(now)
    name = (name or "").strip()
    start = check_drop(conn, now, name=name, sku=sku, price_cents=price_cents, quantity=quantity, minutes=minutes,
                       starts_at=starts_at, drop_id=drop_id)
    end = start + minutes * 60
    product = find_product(conn, sku)
    payload = {"drop_id": drop_id or str(uuid.uuid4()), "name": name, "sku": product.sku, "price_cents": price_cents,
               "quantity": quantity, "starts_at": round(start, 3), "ends_at": round(end, 3), "by": by}
    event = ledger.append(conn, STARTED, payload)
    apply_event(conn, event.as_dict())
    log.info("event=drop_started name=%r sku=%s price_cents=%d quantity=%d minutes=%g", name, product.sku, price_cents,
             quantity, minutes)
    return find(conn, payload["drop_id"]).view(now)


def stop_drop(conn: sqlite3.Connection, ledger: Ledger, name_or_id: str, by: str = "lead") -> dict:
    now = ledger.clock.time()
    d = find(conn, name_or_id)
    if d is None:
        raise DropError(f"no drop called {name_or_id[:60]!r}")
    if d.phase(now) in ("stopped", "ended"):
        raise DropError(f"drop {d.name!r} is already {d.phase(now)}")
    event = ledger.append(conn, STOPPED, {"drop_id": d.drop_id, "by": by, "at": round(now, 3)})
    apply_event(conn, event.as_dict())
    log.info("event=drop_stopped name=%r by=%s", d.name, by)
    return find(conn, d.drop_id).view(now)


def record_sold(conn: sqlite3.Connection, ledger: Ledger, drop_id: str, qty: int, sale_id: str, receipt: str) -> None:
    event = ledger.append(conn, SOLD, {"drop_id": drop_id, "qty": qty, "sale_id": sale_id, "receipt": receipt})
    apply_event(conn, event.as_dict())


# --- what peers send ----------------------------------------------------------------------------------

def peer_payload_problem(type_: str, p: dict) -> str | None:
    """Why a peer's drop event is refused (a short reason), or None."""
    if not isinstance(p.get("drop_id"), str) or not _ID_RE.match(p["drop_id"]):
        return "drop_id"
    if type_ == STARTED:
        if not isinstance(p.get("name"), str) or not NAME_RE.match(p["name"]):
            return "name"
        if not isinstance(p.get("sku"), str) or not 0 < len(p["sku"]) <= 64:
            return "sku"
        for key, high in (("price_cents", 100_000_000), ("quantity", MAX_QUANTITY)):
            v = p.get(key)
            if isinstance(v, bool) or not isinstance(v, int) or not (0 if key == "price_cents" else 1) <= v <= high:
                return key
        start, end = p.get("starts_at"), p.get("ends_at")
        for v in (start, end):
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not 0 < v < 1e11:
                return "window"
        if not 0 < end - start <= MAX_MINUTES * 60:
            return "window"
    elif type_ == SOLD:
        q = p.get("qty")
        if isinstance(q, bool) or not isinstance(q, int) or not 1 <= q <= 1000:
            return "qty"
    elif type_ == STOPPED:
        at = p.get("at")
        if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at) or not 0 < at < 1e11:
            return "at"
    return None


def status(conn: sqlite3.Connection, now: float) -> list[dict]:
    return [d.view(now) for d in drops(conn)]


def dumps(views: list[dict]) -> str:
    return json.dumps(views, indent=2, ensure_ascii=False)
