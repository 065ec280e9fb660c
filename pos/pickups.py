"""Pre-ordered merch picked up at the table: an imported pickup list (a reference document) and
collections recorded in the ledger, so a code is handed over once, and the screen says what to hand over.

CSV: ``code,name,sku,qty[,description]`` with one row per item (rows of one code are merged), or an
``items`` column such as ``1x Hoodie M; 2x Sticker``. JSON: ``[{"code", "name", "items": [{"sku", "qty", "description"}]}]``.
Either may carry a pickup window, ``pickup_from`` / ``pickup_until`` (local times in ``kit.timezone``, read
like ticket validity): a code scanned before its window says when to come back (a lead may hand over
anyway), one scanned after it is handed over and recorded as late.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import sqlite3
from collections.abc import Callable

from kit.config import Config
from kit.db import Database
from kit.documents import DocumentError, ImportReport
from kit.ledger import Ledger
from kit.localtime import clock_text, parse_when
from pos.records import now_iso, record

log = logging.getLogger("fieldkit.pos")
CODE_RE = re.compile(r"^[A-Za-z0-9_.:/-]{3,128}$")
_ITEM_RE = re.compile(r"^\s*(\d{1,4})\s*[x×]\s*(.+?)\s*$", re.IGNORECASE)


class PickupError(Exception):
    """The code is unknown or was already collected; the message says when and by whom."""


class PickupEarly(PickupError):
    """The pickup's window has not opened: the message says when to come back; a lead may override."""


def window(config: Config, raw: dict, rowno: int) -> tuple[float | None, float | None]:
    """A row's pickup window from ``pickup_from`` / ``pickup_until`` (either may be empty)."""
    try:
        start = parse_when(str(raw["pickup_from"]), config.tz) if str(raw.get("pickup_from") or "").strip() else None
        end = (parse_when(str(raw["pickup_until"]), config.tz, end_of_day=True)
               if str(raw.get("pickup_until") or "").strip() else None)
    except ValueError as e:
        raise ValueError(f"pickup window: {e}") from None
    if start is not None and end is not None and end <= start:
        raise ValueError("pickup_until is before pickup_from")
    return start, end


def timing(order: dict, now: float) -> str:
    """any (no window), early, in_window or late."""
    start, end = order.get("pickup_from"), order.get("pickup_until")
    if start is None and end is None:
        return "any"
    if start is not None and now < start:
        return "early"
    if end is not None and now > end:
        return "late"
    return "in_window"


def _norm(h: str) -> str:
    return h.strip().lower().replace(" ", "_")


def _parse_items_text(text: str) -> list[dict]:
    items = []
    for part in re.split(r"[;|]", text):
        if not part.strip():
            continue
        m = _ITEM_RE.match(part)
        qty, desc = (int(m.group(1)), m.group(2)) if m else (1, part.strip())
        items.append({"sku": "", "qty": qty, "description": desc[:80]})
    return items


def import_pickups(conn: sqlite3.Connection, data: bytes, filename: str, config: Config,
                   progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """The ``pos.pickups`` importer: replaces the pickup list; collections already made stay recorded."""
    report = ImportReport()
    orders: dict[str, dict] = {}
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DocumentError("the pickup list must be UTF-8 text (CSV or JSON)") from None
    if filename.lower().endswith(".json") or text.lstrip()[:1] in ("[", "{"):
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise DocumentError(f"not valid JSON: {e}") from None
        entries = doc.get("pickups") if isinstance(doc, dict) else doc
        if not isinstance(entries, list):
            raise DocumentError('JSON pickup list must be a list or {"pickups": [...]}')
        for i, e in enumerate(entries, start=1):
            try:
                if not isinstance(e, dict):
                    raise ValueError("an entry must be an object")
                code = str(e.get("code", "")).strip()
                raw_items = e.get("items")
                if isinstance(raw_items, str):
                    raw_items = _parse_items_text(raw_items)
                if not isinstance(raw_items, list) or not raw_items:
                    raise ValueError("items must be a non-empty list")
                items = [_item(x) for x in raw_items]
                _add(orders, code, str(e.get("name", "")), items, i, window(config, e, i))
            except ValueError as err:
                report.skipped.append((i, str(err)))
    else:
        reader = csv.DictReader(io.StringIO(text))
        headers = {_norm(h) for h in reader.fieldnames or []}
        if "code" not in headers or not ({"items"} & headers or {"sku", "description"} & headers):
            raise DocumentError("the pickup CSV needs a 'code' column and 'items' or 'sku'/'description' + 'qty' columns")
        for i, raw in enumerate(reader, start=2):
            row = {_norm(k): (v or "").strip() for k, v in raw.items() if k}
            try:
                if row.get("items"):
                    items = _parse_items_text(row["items"])
                else:
                    items = [_item({"sku": row.get("sku", ""), "qty": row.get("qty") or "1",
                                    "description": row.get("description", "")})]
                _add(orders, row.get("code", ""), row.get("name", ""), items, i, window(config, row, i))
            except ValueError as err:
                report.skipped.append((i, str(err)))
    for rowno, reason in report.skipped:
        log.warning("event=pickup_row_skipped file=%s row=%d reason=%r", filename, rowno, reason)
    if not orders:
        raise DocumentError(f"{filename}: no valid pickup orders")
    old = {r[0] for r in conn.execute("SELECT code FROM pos_pickup_orders")}
    conn.execute("DELETE FROM pos_pickup_orders")
    names = {r[0]: f"{r[1]} {r[2]}".strip() for r in conn.execute("SELECT sku, name, variant FROM pos_products")}
    for code, o in orders.items():
        for it in o["items"]:
            if not it["description"]:
                it["description"] = names.get(it["sku"], it["sku"])
        conn.execute("INSERT INTO pos_pickup_orders (code, name, items, pickup_from, pickup_until) VALUES (?,?,?,?,?)",
                     (code, o["name"][:80], json.dumps(o["items"]), *o["window"]))
        if code in old:
            report.unchanged += 1
        else:
            report.imported += 1
    return report


def _item(x: object) -> dict:
    if not isinstance(x, dict):
        raise ValueError("an item must be an object")
    try:
        qty = int(str(x.get("qty", 1)))
    except ValueError:
        raise ValueError(f"qty {x.get('qty')!r} is not a whole number") from None
    if not 1 <= qty <= 1000:
        raise ValueError(f"qty {qty} must be between 1 and 1000")
    sku, desc = str(x.get("sku", "") or "").strip()[:64], str(x.get("description", "") or "").strip()[:80]
    if not sku and not desc:
        raise ValueError("an item needs a sku or a description")
    return {"sku": sku, "qty": qty, "description": desc}


def _add(orders: dict, code: str, name: str, items: list[dict], rowno: int,
         window_: tuple[float | None, float | None] = (None, None)) -> None:
    if not CODE_RE.match(code):
        raise ValueError(f"pickup code {code[:40]!r} must be 3-128 letters, digits or -_.:/")
    o = orders.setdefault(code, {"name": name, "items": [], "window": window_})
    if window_ != (None, None):
        o["window"] = window_
    o["items"].extend(items)
    if name and not o["name"]:
        o["name"] = name


def describe(items: list[dict]) -> str:
    return ", ".join(f"{it['qty']}× {it['description'] or it['sku']}" for it in items)


def lookup(conn: sqlite3.Connection, code: str, now: float | None = None, tz=None) -> dict:
    """The order, whether it was collected and, against its window at ``now``, what to tell the person."""
    code = code.strip()
    row = conn.execute("SELECT * FROM pos_pickup_orders WHERE code = ?", (code,)).fetchone()
    if row is None:
        raise PickupError(f"unknown pickup code {code[:40]!r}")
    collected = conn.execute("SELECT at, by_role FROM pos_pickups_collected WHERE code = ?", (code,)).fetchone()
    items = json.loads(row["items"])
    order = {"code": code, "name": row["name"], "items": items, "summary": describe(items),
             "collected_at": collected["at"] if collected else None,
             "pickup_from": row["pickup_from"], "pickup_until": row["pickup_until"]}
    if now is not None:
        order["timing"] = timing(order, now)
        order["verdict"] = verdict_text(order, tz)
    return order


def verdict_text(order: dict, tz) -> str:
    """What the merch screen says, in the words of the issue: early / in window / late."""
    if order.get("collected_at"):
        return "already collected"
    return {"early": f"early — come back at {clock_text(order['pickup_from'], tz)}" if order.get("pickup_from") else "early",
            "in_window": "in window — hand over", "late": "late — hand over", "any": "hand over"}[order["timing"]]


def collect(db: Database, ledger: Ledger, code: str, by: str = "merch", *, tz=None, early_ok: bool = False) -> dict:
    """Mark a pickup as handed over, once. Returns what to hand over.

    Before its window it is refused with PickupEarly (when to come back) unless ``early_ok`` (a lead's
    override); after it, it is handed over and recorded as late.
    """
    code = (code or "").strip()
    if not code or len(code) > 128:
        raise PickupError("scan or type a pickup code")
    now = ledger.clock.time()
    with db.transaction() as conn:
        order = lookup(conn, code, now, tz)
        if order["collected_at"]:
            raise PickupError(f"{code} was already collected at {order['collected_at'][:16].replace('T', ' ')} UTC "
                              f"({order['summary']})")
        if order["timing"] == "early" and not early_ok:
            raise PickupEarly(f"{code}: {order['verdict']} ({order['summary']}); a lead can hand it over now")
        stock_items = [it for it in order["items"] if it["sku"]]
        when = "early_override" if order["timing"] == "early" else order["timing"]
        # The order, not the person: the screen joins the name from the pickup list (DESIGN.md, personal data).
        record(conn, ledger, "pos.pickup_collected",
               {"code": code, "at": now_iso(ledger.clock), "by": by, "items": order["items"],
                "stock_skus": [it["sku"] for it in stock_items], "timing": when})
    log.info("event=pickup_collected code=%s timing=%s items=%r", code, when, order["summary"])
    order["collected_at"] = "now"
    order["timing"] = when
    return order


def board(conn: sqlite3.Connection, now: float, tz, horizon_seconds: float = 1800) -> dict:
    """The pickup board: due in the next 30 minutes (or open now), collected, and not collected in time."""
    rows = conn.execute("SELECT o.code, o.name, o.items, o.pickup_from, o.pickup_until, c.at AS collected_at"
                        " FROM pos_pickup_orders o LEFT JOIN pos_pickups_collected c ON c.code = o.code"
                        " ORDER BY COALESCE(o.pickup_from, 0), o.code").fetchall()
    due, collected, missed = [], [], []
    for r in rows:
        items = json.loads(r["items"])
        entry = {"code": r["code"], "name": r["name"], "summary": describe(items), "pickup_from": r["pickup_from"],
                 "pickup_until": r["pickup_until"], "collected_at": r["collected_at"],
                 "window": _window_text(r["pickup_from"], r["pickup_until"], tz)}
        if r["collected_at"]:
            collected.append(entry)
        elif r["pickup_until"] is not None and r["pickup_until"] < now:
            missed.append(entry)
        elif r["pickup_from"] is None or r["pickup_from"] <= now + horizon_seconds:
            due.append(entry)
    return {"due": due, "collected": collected, "not_collected": missed, "now": now}


def _window_text(start: float | None, end: float | None, tz) -> str:
    if start is None and end is None:
        return "any time"
    if start is None:
        return f"until {clock_text(end, tz)}"
    if end is None:
        return f"from {clock_text(start, tz)}"
    return f"{clock_text(start, tz)}–{clock_text(end, tz)}"


def windows_opening(conn: sqlite3.Connection, after: float, upto: float) -> list[tuple[int, int]]:
    """Pickup windows opening in (after, upto] not announced yet: (opens_at, orders)."""
    return [(int(r[0]), r[1]) for r in conn.execute(
        "SELECT CAST(pickup_from AS INTEGER) AS opens, COUNT(*) FROM pos_pickup_orders"
        " WHERE pickup_from > ? AND pickup_from <= ?"
        " AND CAST(pickup_from AS INTEGER) NOT IN (SELECT opens_at FROM pos_pickup_windows_announced)"
        " GROUP BY opens ORDER BY opens", (after, upto))]
