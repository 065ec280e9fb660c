"""Receipts: one receipt data dict per sale or refund → print lines (paper) and the same lines as HTML.

The receipt is built from the sale's stored document, so a reprint, the preview on screen and the
paper from the printer all say the same thing.
"""

from __future__ import annotations

import functools
import html
import json
import sqlite3
import uuid
from datetime import datetime

from kit.config import Config
from kit.db import Database
from kit.event_codec import unpack
from pos import layout, printqueue
from pos.money import format_cents, format_rate
from pos.reports import columns

DOCUMENT_SQL = "SELECT e.payload FROM pos_sales s JOIN events e ON e.seq = s.seq"
KIND_TITLES = {"sale": "RECEIPT", "refund": "REFUND", "void": "VOID"}


def local_time(at_iso: str, config: Config) -> str:
    return datetime.fromisoformat(at_iso).astimezone(config.tz).strftime("%Y-%m-%d %H:%M")


def receipt_lines(doc: dict, config: Config, original_receipt: str | None = None) -> list[dict]:
    """The print lines of a sale or refund document (its ledger payload)."""
    w = columns(config)
    m = format_cents
    neg = "" if doc["kind"] == "sale" else "-"
    out: list[dict] = []
    if config["kit.event"]:
        out.append(layout.text(config["kit.event"], "center", True, "double"))
    for h in (config["pos.receipt_header"] or "").split("|"):
        if h.strip():
            out.append(layout.text(h.strip(), "center"))
    out.append(layout.text(f"Kit {config.kit_id}", "center"))
    out.append(layout.text(KIND_TITLES[doc["kind"]], "center", True))
    if doc["kind"] != "sale":
        out.append(layout.text(f"for receipt {original_receipt or doc.get('original_receipt', '')}", "center"))
        if doc.get("reason"):
            out.append(layout.text(f"Reason: {doc['reason']}", "center"))
    out.append(layout.rule(w))
    for ln in doc["lines"]:
        label = f"{ln['name']} {ln['variant']}".strip()
        if ln["qty"] == 0:
            label = f"Goodwill: {label}"
        elif ln["qty"] != 1:
            label = f"{ln['qty']} x {label}"
        out.append(layout.two_cols(label, neg + m(ln.get("gross_cents", ln["unit_cents"] * ln["qty"])), w))
        if ln["qty"] > 1:
            out.append(layout.text(f"    @ {m(ln['unit_cents'])}"))
        if ln.get("line_discount_cents"):
            out.append(layout.two_cols(f"    Discount {ln.get('discount_reason', '')}".rstrip(),
                                       ("" if neg else "-") + m(ln["line_discount_cents"]), w))
    out.append(layout.rule(w))
    if doc["discount_cents"]:
        out.append(layout.two_cols("Subtotal", neg + m(doc["subtotal_cents"]), w))
        if doc.get("cart_discount_cents"):
            out.append(layout.two_cols(f"Discount {doc.get('discount_reason', '')}".rstrip(),
                                       ("" if neg else "-") + m(doc["cart_discount_cents"]), w))
    out.append(layout.two_cols(f"TOTAL {doc['currency']}", neg + m(doc["total_cents"]), w, bold=True))
    for t in doc.get("taxes", []):
        if t["tax_bp"]:
            word = "incl." if doc.get("prices_include_tax", True) else "plus"
            out.append(layout.two_cols(f"{word} tax {format_rate(t['tax_bp'])} of {m(t['gross_cents'])}",
                                       neg + m(t["tax_cents"]), w))
    out.append(layout.rule(w))
    for p in doc["payments"]:
        label = {"cash": "Cash", "card": "Card", "other": "Other"}[p["method"]]
        if p["method"] == "card":
            label += f" {p.get('reference', '')}" + (f" ****{p['last4']}" if p.get("last4") else "")
        elif p["method"] == "other" and p.get("reference"):
            label += f" ({p['reference']})"
        shown = p["tendered_cents"] if doc["kind"] == "sale" else p["amount_cents"]
        out.append(layout.two_cols(label, neg + m(shown), w))
    if doc.get("change_cents"):
        out.append(layout.two_cols("CHANGE", m(doc["change_cents"]), w, bold=True))
    out.append(layout.blank())
    out.append(layout.text(f"Receipt {doc['receipt']}", "center", True))
    out.append(layout.text(local_time(doc["at"], config), "center"))
    out.append(layout.qr(doc["id"]))
    if config["pos.receipt_footer"]:
        out.append(layout.text(config["pos.receipt_footer"], "center"))
    out.append(layout.cut())
    return out


def sale_document(conn: sqlite3.Connection, receipt_or_id: str) -> dict | None:
    """A sale's or refund's whole document: its ledger event's payload (the ledger is the truth)."""
    row = conn.execute(DOCUMENT_SQL + " WHERE s.receipt = ? OR s.id = ?", (receipt_or_id, receipt_or_id)).fetchone()
    return json.loads(unpack(row[0])) if row else None


@functools.lru_cache(maxsize=256)
def _qr_svg(content: str, scale: int = 3, border: int = 2) -> str:
    """The receipt's QR code as inline SVG (no external assets), made once per sale and then cached.

    The mask is fixed rather than chosen by segno's eight-way evaluation: any mask is a valid QR code
    and a screen is easy to scan, and the evaluation was ~80% of a sale's time (ESC/POS printers draw
    their own code from the text). One path of horizontal runs: ~6x cheaper than segno's SVG writer.
    """
    import segno

    matrix = segno.make(content, error="m", mask=0, micro=False).matrix
    runs = []
    for y, row in enumerate(matrix):
        x, n = 0, len(row)
        while x < n:
            if row[x]:
                start = x
                while x < n and row[x]:
                    x += 1
                runs.append(f"M{start + border} {y + border}h{x - start}")
            else:
                x += 1
    size = len(matrix) + 2 * border
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{size * scale}" height="{size * scale}" '
            f'viewBox="0 0 {size} {size}" shape-rendering="crispEdges">'
            f'<path stroke="#000" transform="translate(0 .5)" d="{"".join(runs)}"/></svg>')


def lines_to_html(lines: list[dict], qr_url: str | None = None) -> str:
    """The receipt preview: the print lines as monospace HTML, the QR code drawn as SVG.

    With ``qr_url`` (a sale's own preview) the QR is an image the browser loads from that URL after the
    sale has answered, so the till shows the change due without waiting for the QR encoder.
    """
    parts = ['<div class="receipt-paper">']
    for line in lines:
        if "qr" in line and qr_url:
            label = html.escape(line["qr"])
            parts.append(f'<div class="r-qr" title="{label}"><img src="{html.escape(qr_url)}" alt="QR {label}"'
                         ' width="99" height="99"></div>')
        elif "qr" in line:
            parts.append(f'<div class="r-qr" title="{html.escape(line["qr"])}">{_qr_svg(line["qr"])}</div>')
        elif line.get("cut"):
            parts.append('<div class="r-cut">- - - - - - - - - - - - - - - - - - - -</div>')
        else:
            cls = f"r-line r-{line.get('align', 'left')} r-{line.get('size', 'normal')}" + (" r-bold" if line.get("bold") else "")
            parts.append(f'<div class="{cls}">{html.escape(line["text"]) or "&nbsp;"}</div>')
    parts.append("</div>")
    return "".join(parts)


def reprint(db: Database, config: Config, receipt: str, clock=None) -> int:
    """Queue a copy of a stored receipt, rebuilt from the sale document and marked as a copy."""
    with db.transaction() as conn:
        doc = sale_document(conn, receipt)
        if doc is None:
            raise LookupError(f"no receipt {receipt!r} on this kit")
        lines = [layout.text("*** COPY ***", "center", True)] + receipt_lines(doc, config)
        # Not a count of earlier jobs: printed jobs are pruned, and a count that shrinks would reuse an old
        # copy's key (ON CONFLICT DO NOTHING: the copy would silently never print).
        return printqueue.enqueue(conn, f"reprint:{doc['receipt']}:{uuid.uuid4().hex[:12]}", "pos",
                                  f"Copy of {doc['receipt']}", lines, receipt=doc["receipt"], clock=clock)
