"""What HQ reads from the documents it hands out: price lists and stock allocations, ticket counts.

HQ does not import the kit features' code; it reads the same files leniently, enough to reconcile:
``pos.catalogue`` (CSV or JSON: sku, price, stock, and per-kit ``stock_<kit>`` / ``stock:<kit>`` columns)
and ``checkin.attendees`` (any CSV with a header: one ticket per data row).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from kit.metrics import rsvps

_AMOUNT = re.compile(r"^\s*(-)?\s*(\d{1,9})(?:[.,](\d{1,2}))?\s*$")


def parse_amount(text: object) -> int | None:
    """'25.00', '25,5', Decimal('25') → cents; None when it is not an amount (never floats)."""
    if isinstance(text, bool) or text is None:
        return None
    if isinstance(text, int):
        return text * 100
    if isinstance(text, Decimal | float):
        try:
            return int((Decimal(str(text)) * 100).to_integral_exact())
        except InvalidOperation:
            return None
    m = _AMOUNT.match(str(text))
    if not m:
        return None
    sign, units, frac = m.groups()
    cents = int(units) * 100 + int((frac or "0").ljust(2, "0"))
    return -cents if sign else cents


def decode_text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def csv_rows(data: bytes) -> list[dict[str, str]]:
    """Rows keyed by normalised header (lower case, spaces and dashes as '_'); delimiter sniffed."""
    text = decode_text(data)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect=dialect)
    try:
        header = [norm(h) for h in next(reader)]
    except StopIteration:
        return []
    return [dict(zip(header, row, strict=False)) for row in reader if any(c.strip() for c in row)]


def norm(header: str) -> str:
    return re.sub(r"[\s\-]+", "_", header.strip().lower())


@dataclass(frozen=True)
class PriceEntry:
    sku: str
    name: str
    price_cents: int | None
    stock: int | None


def parse_catalogue(data: bytes, kit: str) -> dict[str, PriceEntry]:
    """The price list and stock allocation as one kit sees them. Rows it cannot read are left out."""
    if data.lstrip()[:1] in (b"[", b"{"):
        try:
            doc = json.loads(decode_text(data), parse_float=Decimal)
        except ValueError:
            return {}
        items = doc.get("products") if isinstance(doc, dict) else doc
        rows: list[dict] = []
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict):
                continue
            base = {norm(k): v for k, v in item.items() if k != "variants"}
            variants = item.get("variants")
            if isinstance(variants, list):
                rows.extend({**base, **{norm(k): v for k, v in v.items()}} for v in variants if isinstance(v, dict))
            else:
                rows.append(base)
    else:
        rows = csv_rows(data)
    out: dict[str, PriceEntry] = {}
    for row in rows:
        sku = str(row.get("sku") or "").strip()
        if not sku:
            continue
        stock_text = row.get("stock")
        for key in (f"stock_{kit.lower()}", f"stock:{kit.lower()}"):
            if str(row.get(key, "") or "").strip() != "":
                stock_text = row[key]
        try:
            stock = int(str(stock_text).strip()) if str(stock_text or "").strip() != "" else None
        except ValueError:
            stock = None
        name = " ".join(str(row.get(k) or "").strip() for k in ("name", "variant")).strip()
        out[sku] = PriceEntry(sku, name, parse_amount(row.get("price")), stock)
    return out


def count_rsvps(data: bytes) -> int | None:
    """People an attendee list says are coming (its RSVP / registration status column), or None."""
    rows = csv_rows(data)
    if not rows:
        return None
    headers = list(rows[0])
    return rsvps([h.replace("_", " ") for h in headers], ([r.get(h, "") for h in headers] for r in rows))


def count_tickets(data: bytes) -> int:
    """Tickets in an attendee list: its data rows (a header row is assumed, as every export has one)."""
    return len(csv_rows(data))
