"""Shift reports (X while open, Z at close) computed from the projection tables, and their print layout."""

from __future__ import annotations

import sqlite3

from kit.config import Config
from pos import layout
from pos.money import format_cents, format_rate

PRINT_WIDTH = {"NT-5890K": 32, "POS-5890": 32, "ZJ-5870": 32, "Sunmi-V2": 32, "RP-F10-58mm": 32}


def columns(config: Config) -> int:
    """Characters per line for the configured printer profile (font A)."""
    profile = config["pos.printer.profile"]
    return PRINT_WIDTH.get(profile, 42 if profile not in ("TM-T20II", "TM-L90", "CT-S651", "KR-306") else 48)


def expected_cash(conn: sqlite3.Connection, shift_id: str) -> int:
    shift = conn.execute("SELECT float_cents FROM pos_shifts WHERE id = ?", (shift_id,)).fetchone()
    cash = conn.execute(
        "SELECT COALESCE(SUM(CASE WHEN s.kind = 'sale' THEN p.amount_cents ELSE -p.amount_cents END), 0)"
        " FROM pos_payments p JOIN pos_sales s ON s.id = p.sale_id WHERE s.shift_id = ? AND p.method = 'cash'",
        (shift_id,)).fetchone()[0]
    moves = conn.execute("SELECT COALESCE(SUM(amount_cents), 0) FROM pos_cash_moves WHERE shift_id = ?",
                         (shift_id,)).fetchone()[0]
    return (shift[0] if shift else 0) + cash + moves


def shift_report(conn: sqlite3.Connection, shift_id: str, config: Config) -> dict:
    s = conn.execute("SELECT * FROM pos_shifts WHERE id = ?", (shift_id,)).fetchone()
    totals = {k: {"count": 0, "subtotal_cents": 0, "discount_cents": 0, "tax_cents": 0, "total_cents": 0}
              for k in ("sale", "refund", "void")}
    for r in conn.execute(
            "SELECT kind, COUNT(*), SUM(subtotal_cents), SUM(discount_cents), SUM(tax_cents), SUM(total_cents)"
            " FROM pos_sales WHERE shift_id = ? GROUP BY kind", (shift_id,)):
        totals[r[0]] = {"count": r[1], "subtotal_cents": r[2], "discount_cents": r[3], "tax_cents": r[4], "total_cents": r[5]}
    by_product = [
        {"sku": r[0], "name": r[1], "variant": r[2], "qty": r[3], "total_cents": r[4]}
        for r in conn.execute(
            "SELECT l.sku, l.name, l.variant,"
            " SUM(CASE WHEN s.kind = 'sale' THEN l.qty ELSE -l.qty END),"
            " SUM(CASE WHEN s.kind = 'sale' THEN l.total_cents ELSE -l.total_cents END)"
            " FROM pos_sale_lines l JOIN pos_sales s ON s.id = l.sale_id WHERE s.shift_id = ?"
            " GROUP BY l.sku ORDER BY l.name, l.variant", (shift_id,))
    ]
    by_method = [
        {"method": r[0], "sales_cents": r[1], "refunds_cents": r[2], "net_cents": r[1] - r[2]}
        for r in conn.execute(
            "SELECT p.method, SUM(CASE WHEN s.kind = 'sale' THEN p.amount_cents ELSE 0 END),"
            " SUM(CASE WHEN s.kind != 'sale' THEN p.amount_cents ELSE 0 END)"
            " FROM pos_payments p JOIN pos_sales s ON s.id = p.sale_id WHERE s.shift_id = ?"
            " GROUP BY p.method ORDER BY p.method", (shift_id,))
    ]
    taxes = [
        {"tax_bp": r[0], "tax_cents": r[1], "total_cents": r[2]}
        for r in conn.execute(
            "SELECT l.tax_bp, SUM(CASE WHEN s.kind = 'sale' THEN l.tax_cents ELSE -l.tax_cents END),"
            " SUM(CASE WHEN s.kind = 'sale' THEN l.total_cents ELSE -l.total_cents END)"
            " FROM pos_sale_lines l JOIN pos_sales s ON s.id = l.sale_id WHERE s.shift_id = ?"
            " GROUP BY l.tax_bp ORDER BY l.tax_bp", (shift_id,))
    ]
    moves = conn.execute(
        "SELECT COALESCE(SUM(CASE WHEN amount_cents > 0 THEN amount_cents END), 0),"
        " COALESCE(SUM(CASE WHEN amount_cents < 0 THEN -amount_cents END), 0) FROM pos_cash_moves WHERE shift_id = ?",
        (shift_id,)).fetchone()
    cash_net = next((m["net_cents"] for m in by_method if m["method"] == "cash"), 0)
    cash_sales = next((m["sales_cents"] for m in by_method if m["method"] == "cash"), 0)
    cash_refunds = next((m["refunds_cents"] for m in by_method if m["method"] == "cash"), 0)
    return {
        "kind": "X",
        "currency": config["kit.currency"],
        "kit": config.kit_id,
        "event": config["kit.event"],
        "shift": {"id": s["id"], "number": s["number"], "opened_at": s["opened_at"], "opened_by": s["opened_by"],
                  "float_cents": s["float_cents"], "auto_opened": bool(s["auto_opened"])},
        "sales": totals["sale"], "refunds": totals["refund"], "voids": totals["void"],
        "net_total_cents": totals["sale"]["total_cents"] - totals["refund"]["total_cents"] - totals["void"]["total_cents"],
        "by_product": by_product, "by_method": by_method, "taxes": taxes,
        "cash": {"float_cents": s["float_cents"], "sales_cents": cash_sales, "refunds_cents": cash_refunds,
                 "in_cents": moves[0], "out_cents": moves[1],
                 "expected_cents": s["float_cents"] + cash_net + moves[0] - moves[1]},
    }


def report_document(report: dict, config: Config) -> list[dict]:
    """The X/Z report as print lines."""
    w = columns(config)
    cur = report["currency"]
    m = format_cents
    lines = [
        layout.text(f"{report['kind']} REPORT", "center", True, "double"),
        layout.text(report.get("event") or "", "center"),
        layout.text(f"Kit {report['kit']} - shift {report['shift']['number']}", "center"),
        layout.text(f"Opened {report['shift']['opened_at'][:16].replace('T', ' ')} UTC", "center"),
    ]
    if report.get("closed_at"):
        lines.append(layout.text(f"Closed {report['closed_at'][:16].replace('T', ' ')} UTC", "center"))
    lines += [layout.rule(w), layout.text(f"Amounts in {cur}", bold=True)]
    for label, key in (("Sales", "sales"), ("Refunds", "refunds"), ("Voids", "voids")):
        t = report[key]
        lines.append(layout.two_cols(f"{label} ({t['count']})", m(t["total_cents"]), w))
    lines.append(layout.two_cols("Discounts given", m(report["sales"]["discount_cents"]), w))
    lines.append(layout.two_cols("NET TOTAL", m(report["net_total_cents"]), w, bold=True))
    lines += [layout.rule(w), layout.text("By product", bold=True)]
    for p in report["by_product"]:
        lines.append(layout.two_cols(f"{p['qty']} x {(p['name'] + ' ' + p['variant']).strip()}", m(p["total_cents"]), w))
    lines += [layout.rule(w), layout.text("By payment method", bold=True)]
    for p in report["by_method"]:
        lines.append(layout.two_cols(f"{p['method'].title()} (refunds {m(p['refunds_cents'])})", m(p["net_cents"]), w))
    lines += [layout.rule(w), layout.text("Taxes", bold=True)]
    for t in report["taxes"]:
        lines.append(layout.two_cols(f"Tax {format_rate(t['tax_bp'])} on {m(t['total_cents'])}", m(t["tax_cents"]), w))
    c = report["cash"]
    lines += [layout.rule(w), layout.text("Cash drawer", bold=True),
              layout.two_cols("Float", m(c["float_cents"]), w),
              layout.two_cols("Cash sales", m(c["sales_cents"]), w),
              layout.two_cols("Cash refunds", m(-c["refunds_cents"]), w),
              layout.two_cols("Cash in", m(c["in_cents"]), w),
              layout.two_cols("Cash out", m(-c["out_cents"]), w),
              layout.two_cols("Expected", m(c["expected_cents"]), w, bold=True)]
    if "counted_cents" in report:
        for denom, count in (report.get("counted_detail") or {}).items():
            if count:
                lines.append(layout.two_cols(f"  {count} x {m(int(denom))}", m(int(denom) * count), w))
        lines.append(layout.two_cols("Counted", m(report["counted_cents"]), w, bold=True))
        diff = report["difference_cents"]
        lines.append(layout.two_cols("Difference", ("+" if diff > 0 else "") + m(diff), w, bold=True))
    lines += [layout.blank(), layout.cut()]
    return lines
