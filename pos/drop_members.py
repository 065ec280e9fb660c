"""Members first: for a drop's first minutes only holders of named ticket types buy at its price.

The merch staff scan the buyer's ticket; pos asks the check-in feature over the bus
(``checkin/cmd/verify``: pos never imports checkin) whether the ticket is good and of which type, and
records a ``pos.drop_unlocked`` event naming the ticket only by ``ticket_ref`` (a hash check-in gives,
the same on every kit). Each ticket unlocks the drop once per site and one unit at the drop's price: the
unlock rides on the next sale (``unlocks`` in the sale request) and that sale's ``pos.drop_sold``
names it, so it is spent. Unlocks travel to the site's other merch kits like the drop's other events.
A ticket unlocked on two kits while the link between them was down stands on both (a sale is never
blocked by the network) and the drop shows it as a member ticket used twice, as oversells are.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from datetime import datetime

from kit.ledger import Ledger
from pos.drops import SOLD, UNLOCKED, Drop, DropError, apply_event, find

log = logging.getLogger("fieldkit.pos.drops")
MAX_UNLOCKS_PER_SALE = 50


def in_members_window(conn: sqlite3.Connection, drop_name_or_id: str, now: float) -> Drop:
    """The drop, if a ticket may unlock it now (DropError says why not)."""
    d = find(conn, drop_name_or_id)
    if d is None:
        raise DropError(f"no drop called {drop_name_or_id[:60]!r}")
    phase = d.phase(now)
    if phase == "open":
        raise DropError(f"{d.name} is open to everyone now: no ticket is needed")
    if phase != "members":
        raise DropError(f"{d.name} is not in its members' window now ({phase})")
    return d


def unlock(conn: sqlite3.Connection, ledger: Ledger, drop_name_or_id: str, verified: dict | None, *, by: str,
           tz=None) -> dict:
    """Record that a checked member ticket unlocks one unit of a drop (inside the caller's transaction).

    ``verified``: check-in's answer to ``checkin/cmd/verify`` (None when it did not answer)."""
    d = in_members_window(conn, drop_name_or_id, ledger.clock.time())
    if verified is None:
        raise DropError("check-in did not answer: is the door service running on this kit? Sell at the normal price")
    if not verified.get("ok"):
        raise DropError(f"ticket refused: {str(verified.get('reason') or 'not a valid ticket')[:200]}")
    ticket_type, ref = str(verified.get("ticket_type", ""))[:80], str(verified.get("ticket_ref", ""))[:64]
    if ticket_type.strip().lower() not in {t.lower() for t in d.member_types}:
        until = datetime.fromtimestamp(d.members_until, tz).strftime("%H:%M")
        raise DropError(f"a {ticket_type or 'plain'} ticket does not unlock {d.name}: members first "
                        f"({', '.join(d.member_types)}) until {until}")
    used = conn.execute("SELECT origin_kit, hlc FROM pos_drop_events WHERE drop_id = ? AND type = ? AND ticket_ref = ?"
                        " ORDER BY hlc LIMIT 1", (d.drop_id, UNLOCKED, ref)).fetchone()
    if used is not None:
        raise DropError(f"this ticket already unlocked {d.name} (at {used[0]}): once per ticket")
    payload = {"drop_id": d.drop_id, "unlock_id": str(uuid.uuid4()), "ticket_ref": ref, "ticket_type": ticket_type,
               "by": by}
    event = ledger.append(conn, UNLOCKED, payload)
    apply_event(conn, event.as_dict())
    log.info("event=drop_unlocked drop=%r ticket_type=%r by=%s", d.name, ticket_type, by)
    return {"unlock_id": payload["unlock_id"], "drop": d.name, "drop_id": d.drop_id, "sku": d.sku,
            "price_cents": d.price_cents, "ticket_type": ticket_type}


def usable(conn: sqlite3.Connection, drop_id: str, unlock_ids: list[str]) -> list[str]:
    """Of the unlocks a sale brings, those of this drop not yet spent by a sale (on any kit), in order."""
    if not unlock_ids:
        return []
    marks = ",".join("?" * len(unlock_ids))
    rows = conn.execute(
        f"SELECT u.unlock_id FROM pos_drop_events u WHERE u.type = ? AND u.drop_id = ? AND u.unlock_id IN ({marks})"
        " AND NOT EXISTS (SELECT 1 FROM pos_drop_events s WHERE s.type = ? AND s.unlock_id = u.unlock_id)",
        (UNLOCKED, drop_id, *unlock_ids, SOLD)).fetchall()
    found = {r[0] for r in rows}
    return [u for u in dict.fromkeys(unlock_ids) if u in found]
