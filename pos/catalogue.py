"""The catalogue: products with variants, prices in cents, tax rates, stock allocation per kit.

It is a reference document (DESIGN.md): the CLI, the dashboard's upload page and HQ downloads all
go through ``import_catalogue``, which replaces the previous version. A lead can also edit a
product in the UI (``edit_product``); the next imported version replaces those edits.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from kit.config import Config
from kit.documents import DocumentError, ImportReport, csv_rows
from pos.money import MAX_QTY, MoneyError, format_cents, parse_cents, parse_rate

log = logging.getLogger("fieldkit.pos")
MAX_ROWS = 20_000
FIELDS = ("sku", "name", "variant", "price", "tax_rate", "stock", "barcode", "active", "currency", "position")
_TRUE = {"1", "true", "yes", "y", "on", "x", "active"}
_FALSE = {"0", "false", "no", "n", "off", "", "inactive"}


class CatalogueError(Exception):
    """A product cannot be found or edited as asked."""


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    variant: str
    price_cents: int
    currency: str
    tax_bp: int
    barcode: str
    stock: int | None
    active: bool
    position: int

    @property
    def label(self) -> str:
        return f"{self.name} {self.variant}".strip()

    def as_dict(self, sold: int = 0) -> dict:
        return {
            "sku": self.sku, "name": self.name, "variant": self.variant, "price_cents": self.price_cents,
            "price": format_cents(self.price_cents), "currency": self.currency, "tax_bp": self.tax_bp,
            "barcode": self.barcode, "stock": self.stock, "active": self.active, "position": self.position,
            "remaining": None if self.stock is None else self.stock - sold,
        }

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> Product:
        return cls(r["sku"], r["name"], r["variant"], r["price_cents"], r["currency"], r["tax_bp"],
                   r["barcode"] or "", r["stock"], bool(r["active"]), r["position"])


def _norm_header(h: str) -> str:
    return h.strip().lower().replace(" ", "_").replace("-", "_")


def _clean_row(raw: dict, config: Config) -> dict:
    """One source row → product values; raises ValueError with a message for the import report."""
    row = {_norm_header(str(k)): ("" if v is None else str(v).strip()) for k, v in raw.items() if k is not None}
    # A per-kit stock column (`stock_<kit>` or `stock:<kit>`) wins over the plain `stock`.
    for key in (f"stock_{config.kit_id.lower()}", f"stock:{config.kit_id.lower()}"):
        if row.get(key, "") != "":
            row["stock"] = row[key]
    sku = row.get("sku", "")
    if not sku:
        raise ValueError("sku is empty")
    if len(sku) > 64 or any(c.isspace() for c in sku) or ":" in sku:
        raise ValueError(f"sku {sku[:64]!r} must be at most 64 characters without spaces or ':'")
    name = row.get("name", "")
    if not name:
        raise ValueError("name is empty")
    try:
        price = parse_cents(row.get("price", ""), what="price")
    except MoneyError as e:
        raise ValueError(str(e)) from None
    currency = (row.get("currency") or config["kit.currency"]).upper()
    if currency != config["kit.currency"]:
        raise ValueError(f"currency {currency} is not this kit's currency {config['kit.currency']}")
    try:
        tax = parse_rate(row.get("tax_rate") or config["pos.default_tax_rate"])
    except MoneyError as e:
        raise ValueError(str(e)) from None
    stock: int | None = None
    if row.get("stock", "") != "":
        try:
            stock = int(row["stock"])
        except ValueError:
            raise ValueError(f"stock {row['stock']!r} is not a whole number") from None
        if not 0 <= stock <= 1_000_000:
            raise ValueError(f"stock {stock} must be between 0 and 1000000")
    active_text = row.get("active", "").lower()
    if active_text not in _TRUE | _FALSE:
        raise ValueError(f"active {row['active']!r} must be yes/no, true/false or 1/0")
    try:
        position = int(row.get("position") or 0)
    except ValueError:
        raise ValueError(f"position {row['position']!r} is not a whole number") from None
    return {
        "sku": sku, "name": name[:80], "variant": row.get("variant", "")[:40], "price_cents": price,
        "currency": currency, "tax_bp": tax, "barcode": row.get("barcode", "")[:64] or None, "stock": stock,
        "active": 0 if ("active" in row and active_text in _FALSE and row["active"] != "") else 1,
        "position": position,
    }


def _rows_from_json(data: bytes) -> list[dict]:
    try:
        doc = json.loads(data.decode("utf-8-sig"), parse_float=Decimal)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:  # RecursionError: absurdly deep nesting
        raise DocumentError(f"not valid JSON: {e}") from None
    items = doc.get("products") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise DocumentError('JSON catalogue must be a list of products or {"products": [...]}')
    rows: list[dict] = []
    for item in items:
        if not isinstance(item, dict):
            rows.append({"_error": f"a product must be an object, got {type(item).__name__}"})
            continue
        variants = item.get("variants")
        base = {k: v for k, v in item.items() if k != "variants"}
        if isinstance(variants, list):
            for v in variants:
                rows.append({**base, **v} if isinstance(v, dict) else {"_error": "a variant must be an object"})
        else:
            rows.append(base)
    return rows


def _rows_from_csv(data: bytes, filename: str = "catalogue") -> list[dict]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    sample = text[:4096]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text.replace("\x00", "")), dialect=dialect)
    rows = csv_rows(reader, filename)  # a field over the csv module's limit is a clear refusal
    headers = {_norm_header(h) for h in (reader.fieldnames or [])}
    missing = [h for h in ("sku", "name", "price") if h not in headers]
    if missing:
        raise DocumentError(
            f"the CSV header must name at least sku, name and price; missing: {', '.join(missing)} "
            f"(found: {', '.join(reader.fieldnames or []) or 'no header'})"
        )
    return rows


def import_catalogue(conn: sqlite3.Connection, data: bytes, filename: str, config: Config,
                     progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """The ``pos.catalogue`` importer: replaces the catalogue; bad rows are reported and skipped."""
    is_json = filename.lower().endswith(".json") or data.lstrip()[:1] in (b"[", b"{")
    rows = _rows_from_json(data) if is_json else _rows_from_csv(data, filename)
    if len(rows) > MAX_ROWS:
        raise DocumentError(f"{len(rows)} products is more than the {MAX_ROWS} this kit accepts")
    report = ImportReport()
    old = {r["sku"]: dict(r) for r in conn.execute("SELECT * FROM pos_products")}
    seen: dict[str, int] = {}
    barcodes: dict[str, int] = {}
    clean: list[dict] = []
    first_row = 1 if is_json else 2  # CSV row 1 is the header
    for i, raw in enumerate(rows):
        rowno = i + first_row
        try:
            if "_error" in raw:
                raise ValueError(raw["_error"])
            values = _clean_row(raw, config)
            if values["sku"] in seen:
                raise ValueError(f"sku {values['sku']} already on row {seen[values['sku']]}")
            if values["barcode"] and values["barcode"] in barcodes:
                raise ValueError(f"barcode {values['barcode']} already on row {barcodes[values['barcode']]}")
        except ValueError as e:
            report.skipped.append((rowno, str(e)))
            log.warning("event=catalogue_row_skipped file=%s row=%d reason=%r", filename, rowno, str(e))
            continue
        seen[values["sku"]] = rowno
        if values["barcode"]:
            barcodes[values["barcode"]] = rowno
        values.setdefault("position", 0)
        if not values["position"]:
            values["position"] = len(clean) + 1
        clean.append(values)
        if progress:
            progress(i + 1, len(rows))
    if not clean:
        raise DocumentError(f"{filename}: no valid products (first problem: "
                            f"{report.skipped[0][1] if report.skipped else 'the file is empty'})")
    conn.execute("DELETE FROM pos_products")
    for v in clean:
        before = old.get(v["sku"])
        if before is None:
            report.imported += 1
        elif all(before[k] == v[k] for k in v):
            report.unchanged += 1
        else:
            report.updated += 1
        conn.execute(
            "INSERT INTO pos_products (sku, name, variant, price_cents, currency, tax_bp, barcode, stock, active, position)"
            " VALUES (:sku, :name, :variant, :price_cents, :currency, :tax_bp, :barcode, :stock, :active, :position)", v)
    gone = sorted(set(old) - set(seen))
    if gone:
        report.notes.append(f"{len(gone)} product(s) no longer in the catalogue: {', '.join(gone[:10])}")
    return report


def products(conn: sqlite3.Connection, *, active_only: bool = False) -> list[Product]:
    sql = "SELECT * FROM pos_products" + (" WHERE active = 1" if active_only else "") + " ORDER BY position, name, sku"
    return [Product.from_row(r) for r in conn.execute(sql)]


def sold_by_sku(conn: sqlite3.Connection) -> dict[str, int]:
    return {r[0]: r[1] for r in conn.execute("SELECT sku, sold FROM pos_stock_sold")}


def find_product(conn: sqlite3.Connection, code: str) -> Product:
    """By SKU, else by barcode (what a scanner types)."""
    r = conn.execute("SELECT * FROM pos_products WHERE sku = ?", (code,)).fetchone()
    if r is None and code:
        r = conn.execute("SELECT * FROM pos_products WHERE barcode = ?", (code,)).fetchone()
    if r is None:
        raise CatalogueError(f"unknown SKU {code[:64]!r}")
    return Product.from_row(r)


def catalogue_view(conn: sqlite3.Connection, *, active_only: bool = True) -> dict:
    """Products grouped by name with their variants, as the merch screen and the API show them."""
    sold = sold_by_sku(conn)
    groups: dict[str, dict] = {}
    for p in products(conn, active_only=active_only):
        g = groups.setdefault(p.name, {"name": p.name, "variants": []})
        g["variants"].append(p.as_dict(sold.get(p.sku, 0)))
    return {"products": list(groups.values())}


EDITABLE = ("name", "variant", "price", "tax_rate", "stock", "barcode", "active")


def edit_product(conn: sqlite3.Connection, sku: str, changes: dict, config: Config, by: str = "lead") -> Product:
    """A lead's edit of one product (or a new one); same validation as the importer."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise CatalogueError(f"cannot edit {', '.join(sorted(unknown))}; editable: {', '.join(EDITABLE)}")
    current = conn.execute("SELECT * FROM pos_products WHERE sku = ?", (sku,)).fetchone()
    base: dict = {"sku": sku}
    if current is not None:
        p = Product.from_row(current)
        base.update(name=p.name, variant=p.variant, price=format_cents(p.price_cents),
                    tax_rate=str(Decimal(p.tax_bp) / 100), stock="" if p.stock is None else str(p.stock),
                    barcode=p.barcode, active="1" if p.active else "0", position=str(p.position))
    base.update({k: ("" if v is None else (("1" if v else "0") if isinstance(v, bool) else str(v)))
                 for k, v in changes.items()})
    try:
        values = _clean_row(base, config)
    except ValueError as e:
        raise CatalogueError(str(e)) from None
    if values["barcode"]:
        clash = conn.execute("SELECT sku FROM pos_products WHERE barcode = ? AND sku != ?", (values["barcode"], sku)).fetchone()
        if clash:
            raise CatalogueError(f"barcode {values['barcode']} already belongs to {clash[0]}")
    if current is None and not values["position"]:
        values["position"] = (conn.execute("SELECT COALESCE(MAX(position), 0) FROM pos_products").fetchone()[0]) + 1
    values["edited_by"] = by
    conn.execute(
        "INSERT INTO pos_products (sku, name, variant, price_cents, currency, tax_bp, barcode, stock, active, position, edited_by)"
        " VALUES (:sku, :name, :variant, :price_cents, :currency, :tax_bp, :barcode, :stock, :active, :position, :edited_by)"
        " ON CONFLICT(sku) DO UPDATE SET name=excluded.name, variant=excluded.variant, price_cents=excluded.price_cents,"
        " tax_bp=excluded.tax_bp, barcode=excluded.barcode, stock=excluded.stock, active=excluded.active,"
        " position=excluded.position, edited_by=excluded.edited_by", values)
    log.info("event=product_edited sku=%s by=%s fields=%s", sku, by, ",".join(sorted(changes)))
    return find_product(conn, sku)


def check_qty(qty: object) -> int:
    if not isinstance(qty, int) or isinstance(qty, bool):
        raise CatalogueError(f"quantity {qty!r} is not a whole number")
    if qty <= 0:
        raise CatalogueError(f"quantity {qty} must be at least 1")
    if qty > MAX_QTY:
        raise CatalogueError(f"quantity {qty} is more than {MAX_QTY}")
    return qty
