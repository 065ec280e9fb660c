"""Live drops: a quantity of one product at an offer price for a window, shared by the site's merch kits.

A drop started on any kit (``fieldkit pos drop start``, the merch lead screen) is a ledger event
shared over the site link, so it exists on every merch kit of the site; each kit sells its drop units
from its own stock. Every drop unit sold is a ``pos.drop_sold`` event in the sale's own transaction,
also shared, so every kit knows how many are left. A sale is never blocked by the network: when two
kits sold the last units while the link between them was down, both sales stand and the drop shows
``oversold by N`` to the lead (and at HQ). When the quantity is sold or the window ends, the offer ends
and the product is back at its normal price.

Members first: a drop may keep its price, for its first minutes, to holders of named ticket types
(``members_until``, ``member_types``); the merch staff scan the buyer's ticket and each ticket unlocks
one unit once per site (pos/drop_members.py).

Events: ``pos.drop_started`` {"drop_id", "name", "sku", "price_cents", "quantity", "starts_at",
"ends_at", "by", "members_until"?, "member_types"?}, ``pos.drop_stopped`` {"drop_id", "by", "at"},
``pos.drop_sold`` {"drop_id", "qty", "sale_id", "receipt", "unlock_id"?}, ``pos.drop_unlocked``
{"drop_id", "unlock_id", "ticket_ref", "ticket_type", "by"}. Own and peers' events are kept in ``pos_drop_events`` (one row each, never
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
STARTED, STOPPED, SOLD, UNLOCKED = "pos.drop_started", "pos.drop_stopped", "pos.drop_sold", "pos.drop_unlocked"
DROP_TYPES = (STARTED, STOPPED, SOLD, UNLOCKED)
MAX_MEMBER_TYPES = 20
MAX_MINUTES = 24 * 60
MAX_QUANTITY = 100_000
LAST_MINUTE_SECONDS = 60
SELLING = ("members", "open")  # the phases in which the drop price applies (to members only, then to all)
NAME_RE = re.compile(r"^[\w .:'&+#-]{1,60}$")
_ID_RE = re.compile(r"^[0-9a-fA-F-]{8,64}$")
_REF_RE = re.compile(r"^[0-9a-f]{16,64}$")


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
    members_until: float | None = None  # before this, only holders of member_types buy at the drop price
    member_types: tuple[str, ...] = ()
    unlocks: int = 0  # member tickets that unlocked it (every kit's)
    tickets_reused: int = 0  # member tickets unlocked twice (two kits, a link down): flagged like an oversell

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
        if self.members_until is not None and now < self.members_until:
            return "members"
        return "open"

    def view(self, now: float) -> dict:
        d = asdict(self)
        phase = self.phase(now)
        d.update(phase=phase, left=self.left, oversold=self.oversold, member_types=list(self.member_types),
                 seconds_left=max(0.0, round(self.ends_at - now, 1)) if phase in SELLING else 0.0,
                 members_seconds_left=max(0.0, round(self.members_until - now, 1)) if phase == "members" else 0.0)
        return d


# --- the events as rows -------------------------------------------------------------------------------

def store_event(conn: sqlite3.Connection, event_id: str, origin_kit: str, type_: str, hlc: int, p: dict) -> bool:
    """Keep one drop event (this kit's, from the projection, or a peer's, from the site link)."""
    types = p.get("member_types")
    cur = conn.execute(
        "INSERT OR IGNORE INTO pos_drop_events (event_id, origin_kit, type, drop_id, sku, price_cents, quantity, qty,"
        " starts_at, ends_at, at, name, hlc, members_until, member_types, ticket_ref, ticket_type, unlock_id)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (event_id, origin_kit, type_, p["drop_id"], p.get("sku"), p.get("price_cents"), p.get("quantity"), p.get("qty"),
         p.get("starts_at"), p.get("ends_at"), p.get("at"), p.get("name"), hlc, p.get("members_until"),
         json.dumps(types) if types else None, p.get("ticket_ref"), p.get("ticket_type"), p.get("unlock_id")))
    return cur.rowcount == 1


def apply_event(conn: sqlite3.Connection, event: dict) -> None:
    """The projection of this kit's own drop events (live and during `fieldkit ledger rebuild`)."""
    store_event(conn, event["id"], event["kit"], event["type"], event["hlc"], event["payload"])


def drops(conn: sqlite3.Connection) -> list[Drop]:
    rows = conn.execute(
        "SELECT s.drop_id, s.name, s.sku, s.price_cents, s.quantity, s.starts_at, s.ends_at, s.origin_kit,"
        " (SELECT MIN(at) FROM pos_drop_events x WHERE x.drop_id = s.drop_id AND x.type = ?) AS stopped_at,"
        " (SELECT COALESCE(SUM(qty), 0) FROM pos_drop_events x WHERE x.drop_id = s.drop_id AND x.type = ?) AS sold,"
        " s.members_until, s.member_types,"
        " (SELECT COUNT(*) FROM pos_drop_events x WHERE x.drop_id = s.drop_id AND x.type = ?) AS unlocks,"
        " (SELECT COUNT(*) - COUNT(DISTINCT ticket_ref) FROM pos_drop_events x WHERE x.drop_id = s.drop_id"
        "  AND x.type = ?) AS reused"
        " FROM pos_drop_events s WHERE s.type = ? ORDER BY s.starts_at, s.hlc",
        (STOPPED, SOLD, UNLOCKED, UNLOCKED, STARTED)).fetchall()
    out, seen = [], set()
    for r in rows:  # a slot's drop opened by two kits at once (a partition): one drop, the earliest start
        if r[0] not in seen:
            seen.add(r[0])
            types = tuple(json.loads(r[11])) if r[11] else ()
            out.append(Drop(*r[:10], members_until=r[10], member_types=types, unlocks=r[12], tickets_reused=r[13]))
    return out


def selling(conn: sqlite3.Connection, now: float) -> dict[str, Drop]:
    """The drop each SKU sells from at ``now`` (the earliest started, if two kits made one each); in its
    members' phase only a buyer with an unlock gets its price (see pos/drop_members.py). Read once per
    cart, and only when some drop's window is open: most sales of an evening run with no drop."""
    if conn.execute("SELECT 1 FROM pos_drop_events WHERE type = ? AND starts_at <= ? AND ends_at > ? LIMIT 1",
                    (STARTED, now, now)).fetchone() is None:
        return {}
    out: dict[str, Drop] = {}
    for d in drops(conn):
        if d.phase(now) in SELLING:
            out.setdefault(d.sku, d)
    return out



def find(conn: sqlite3.Connection, name_or_id: str) -> Drop | None:
    matches = [d for d in drops(conn) if d.drop_id == name_or_id or d.name == name_or_id]
    return matches[-1] if matches else None


# --- what a lead does ---------------------------------------------------------------------------------

def check_members(members_minutes: float | None, member_types, minutes: float) -> tuple[str, ...]:
    """The member ticket types of a members-first phase (DropError if the phase makes no sense)."""
    if members_minutes is None and not member_types:
        return ()
    if isinstance(members_minutes, bool) or not isinstance(members_minutes, int | float) \
            or not math.isfinite(members_minutes) or not 0 < members_minutes < minutes:
        raise DropError("members' minutes must be above 0 and shorter than the drop's window")
    types = tuple(t.strip() for t in (member_types or ()) if isinstance(t, str) and t.strip())
    if not types or len(types) > MAX_MEMBER_TYPES or any(len(t) > 80 for t in types):
        raise DropError("a members-first drop names the ticket types that may buy first (--member-types Member,Patron)")
    return types


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
        if d.sku == product.sku and d.phase(now) in (*SELLING, "upcoming") and d.starts_at < end and start < d.ends_at:
            raise DropError(f"drop {d.name!r} already runs on {product.sku} until {d.ends_at:.0f}: one drop per product at once")
        if d.name == name and d.phase(now) in (*SELLING, "upcoming"):
            raise DropError(f"a drop called {name!r} is already running")
    return start


def start_drop(conn: sqlite3.Connection, ledger: Ledger, *, name: str, sku: str, price_cents: int, quantity: int,
               minutes: float, starts_at: float | None = None, by: str = "lead", drop_id: str | None = None,
               members_minutes: float | None = None, member_types=None) -> dict:
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
    types = check_members(members_minutes, member_types, minutes)
    end = start + minutes * 60
    product = find_product(conn, sku)
    payload = {"drop_id": drop_id or str(uuid.uuid4()), "name": name, "sku": product.sku, "price_cents": price_cents,
               "quantity": quantity, "starts_at": math.floor(start * 1000) / 1000, "ends_at": round(end, 3), "by": by}
    if types:
        payload.update(members_until=round(payload["starts_at"] + members_minutes * 60, 3), member_types=list(types))
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


def record_sold(conn: sqlite3.Connection, ledger: Ledger, drop_id: str, qty: int, sale_id: str, receipt: str,
                unlock_id: str | None = None) -> None:
    payload = {"drop_id": drop_id, "qty": qty, "sale_id": sale_id, "receipt": receipt}
    if unlock_id:
        payload["unlock_id"] = unlock_id
    event = ledger.append(conn, SOLD, payload)
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
        until, types = p.get("members_until"), p.get("member_types")
        if until is not None or types is not None:
            if isinstance(until, bool) or not isinstance(until, int | float) or not start < until < end:
                return "members_until"
            if not isinstance(types, list) or not 0 < len(types) <= MAX_MEMBER_TYPES \
                    or not all(isinstance(t, str) and 0 < len(t) <= 80 for t in types):
                return "member_types"
    elif type_ == SOLD:
        q = p.get("qty")
        if isinstance(q, bool) or not isinstance(q, int) or not 1 <= q <= 1000:
            return "qty"
        if p.get("unlock_id") is not None and (not isinstance(p["unlock_id"], str) or not _ID_RE.match(p["unlock_id"])):
            return "unlock_id"
    elif type_ == UNLOCKED:
        if not isinstance(p.get("unlock_id"), str) or not _ID_RE.match(p["unlock_id"]):
            return "unlock_id"
        if not isinstance(p.get("ticket_ref"), str) or not _REF_RE.match(p["ticket_ref"]):
            return "ticket_ref"
        if not isinstance(p.get("ticket_type"), str) or not 0 < len(p["ticket_type"]) <= 80:
            return "ticket_type"
    elif type_ == STOPPED:
        at = p.get("at")
        if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at) or not 0 < at < 1e11:
            return "at"
    return None


def status(conn: sqlite3.Connection, now: float) -> list[dict]:
    return [d.view(now) for d in drops(conn)]


def dumps(views: list[dict]) -> str:
    return json.dumps(views, indent=2, ensure_ascii=False)
