"""Pre-ordered merch picked up at the table: an imported pickup list (a reference document) and
collections recorded in the ledger, so a code is handed over once, and the screen says what to hand over.

CSV: ``code,name,sku,qty[,description]`` with one row per item (rows of one code are merged), or an
``items`` column such as ``1x Hoodie M; 2x Sticker``. JSON: ``[{"code", "name", "items": [{"sku", "qty", "description"}]}]``.
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
from pos.records import now_iso, record

log = logging.getLogger("fieldkit.pos")
CODE_RE = re.compile(r"^[A-Za-z0-9_.:/-]{3,128}$")
_ITEM_RE = re.compile(r"^\s*(\d{1,4})\s*[x×]\s*(.+?)\s*$", re.IGNORECASE)


class PickupError(Exception):
    """The code is unknown or was already collected; the message says when and by whom."""


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
                _add(orders, code, str(e.get("name", "")), items, i)
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
                _add(orders, row.get("code", ""), row.get("name", ""), items, i)
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
        conn.execute("INSERT INTO pos_pickup_orders (code, name, items) VALUES (?,?,?)",
                     (code, o["name"][:80], json.dumps(o["items"])))
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


def _add(orders: dict, code: str, name: str, items: list[dict], rowno: int) -> None:
    if not CODE_RE.match(code):
        raise ValueError(f"pickup code {code[:40]!r} must be 3-128 letters, digits or -_.:/")
    o = orders.setdefault(code, {"name": name, "items": []})
    o["items"].extend(items)
    if name and not o["name"]:
        o["name"] = name


def describe(items: list[dict]) -> str:
    return ", ".join(f"{it['qty']}× {it['description'] or it['sku']}" for it in items)


def lookup(conn: sqlite3.Connection, code: str) -> dict:
    code = code.strip()
    row = conn.execute("SELECT * FROM pos_pickup_orders WHERE code = ?", (code,)).fetchone()
    if row is None:
        raise PickupError(f"unknown pickup code {code[:40]!r}")
    collected = conn.execute("SELECT at, by_role FROM pos_pickups_collected WHERE code = ?", (code,)).fetchone()
    items = json.loads(row["items"])
    return {"code": code, "name": row["name"], "items": items, "summary": describe(items),
            "collected_at": collected["at"] if collected else None}


def collect(db: Database, ledger: Ledger, code: str, by: str = "merch") -> dict:
    """Mark a pickup as handed over, once. Returns what to hand over."""
    code = (code or "").strip()
    if not code or len(code) > 128:
        raise PickupError("scan or type a pickup code")
    with db.transaction() as conn:
        order = lookup(conn, code)
        if order["collected_at"]:
            raise PickupError(f"{code} was already collected at {order['collected_at'][:16].replace('T', ' ')} UTC "
                              f"({order['summary']})")
        stock_items = [it for it in order["items"] if it["sku"]]
        record(conn, ledger, "pos.pickup_collected",
               {"code": code, "at": now_iso(ledger.clock), "by": by, "items": order["items"], "name": order["name"],
                "stock_skus": [it["sku"] for it in stock_items]})
    log.info("event=pickup_collected code=%s items=%r", code, order["summary"])
    order["collected_at"] = "now"
    return order
