"""The report's questions about sales, payments and scans, asked of the facts tables (sync/hq/facts.py).

Each is one GROUP BY in the database (SQLite or PostgreSQL alike), so the report's cost grows with
kits x products and the exceptions it lists, not with the events of the night. ``Scope`` is the
report's site and time range, applied to every question the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sync.hq import schema

S, L, P, A, U = schema.sale_facts, schema.line_facts, schema.payment_facts, schema.scan_facts, schema.undo_facts
QUARTER_MS = 15 * 60 * 1000


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def at_of(at_ms: int) -> datetime:
    return datetime.fromtimestamp(at_ms / 1000, UTC)


@dataclass
class Scope:
    site: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def where(self, query, table: sa.Table):
        if self.site:
            query = query.where(table.c.kit.in_(sa.select(schema.kits.c.kit).where(schema.kits.c.site == self.site)))
        if self.since:
            query = query.where(table.c.at_ms >= ms(self.since))
        if self.until:
            query = query.where(table.c.at_ms < ms(self.until))
        return query


def _signed(column):
    return sa.func.coalesce(sa.func.sum(column), 0)


def not_undone(table=A):
    return ~sa.exists().where(U.c.kit == table.c.kit, U.c.scan_event_id == table.c.event_id)


def products(conn: Connection, scope: Scope) -> list[tuple]:
    """(kit, sku, name, qty, total) per kit and product, refunds subtracted."""
    q = scope.where(sa.select(L.c.kit, L.c.sku, sa.func.min(L.c.name), _signed(L.c.sign * L.c.qty),
                              _signed(L.c.sign * L.c.total_cents)).where(L.c.sku != "")
                    .group_by(L.c.kit, L.c.sku), L)
    return sorted(tuple(r) for r in conn.execute(q))


def payments(conn: Connection, scope: Scope) -> list[tuple]:
    """(kit, method, payments, amount) per kit and payment method."""
    q = scope.where(sa.select(P.c.kit, P.c.method, sa.func.count(), _signed(P.c.sign * P.c.amount_cents))
                    .group_by(P.c.kit, P.c.method), P)
    return sorted(tuple(r) for r in conn.execute(q))


def stock_sold(conn: Connection, scope: Scope) -> dict[tuple[str, str], int]:
    q = scope.where(sa.select(L.c.kit, L.c.sku, _signed(L.c.sign * L.c.qty))
                    .where(L.c.sku != "", L.c.moves_stock).group_by(L.c.kit, L.c.sku), L)
    return {(k, s): int(n) for k, s, n in conn.execute(q)}


def shift_cash(conn: Connection, scope: Scope) -> tuple[set[tuple[str, str]], dict[tuple[str, str], tuple[int, int]]]:
    """The shifts sales name, and per shift the cash taken in sales and paid out in refunds."""
    named = {(k, s) for k, s in conn.execute(scope.where(
        sa.select(S.c.kit, S.c.shift_id).where(S.c.shift_id != "").distinct(), S))}
    cash_in = sa.case((P.c.sign > 0, P.c.amount_cents), else_=0)
    cash_out = sa.case((P.c.sign < 0, P.c.amount_cents), else_=0)
    q = scope.where(sa.select(P.c.kit, P.c.shift_id, _signed(cash_in), _signed(cash_out))
                    .where(P.c.method == "cash", P.c.shift_id != "").group_by(P.c.kit, P.c.shift_id), P)
    return named, {(k, s): (int(a), int(b)) for k, s, a, b in conn.execute(q)}


def card_totals(conn: Connection, scope: Scope) -> list[tuple[str, int, int]]:
    """(kit, card payments, amount) per kit."""
    q = scope.where(sa.select(P.c.kit, sa.func.count(), _signed(P.c.sign * P.c.amount_cents))
                    .where(P.c.method == "card").group_by(P.c.kit), P)
    return sorted((k, int(n), int(a)) for k, n, a in conn.execute(q))


def card_payments(conn: Connection, scope: Scope) -> list[tuple[str, str, int, str, datetime]]:
    """Every card payment: kit, receipt, signed amount, reference, time; in kit and ledger order."""
    q = scope.where(sa.select(P.c.kit, P.c.receipt, P.c.sign * P.c.amount_cents, P.c.reference, P.c.at_ms)
                    .where(P.c.method == "card").order_by(P.c.kit, P.c.seq, P.c.idx), P)
    return [(k, r, int(a), ref, at_of(t)) for k, r, a, ref, t in conn.execute(q)]


def doubles(conn: Connection, scope: Scope) -> dict[str, list[tuple]]:
    """Tickets with more than one first entry: ticket -> [(kit, door, time, order code)] in ledger order."""
    twice = scope.where(sa.select(A.c.ticket_key).where(A.c.first_entry, not_undone())
                        .group_by(A.c.ticket_key).having(sa.func.count() > 1), A)
    q = scope.where(sa.select(A.c.ticket_key, A.c.kit, A.c.door, A.c.at_ms, A.c.order_code)
                    .where(A.c.first_entry, not_undone(), A.c.ticket_key.in_(twice))
                    .order_by(A.c.kit, A.c.seq), A)
    out: dict[str, list[tuple]] = {}
    for ticket, kit, door, at, order in conn.execute(q):
        out.setdefault(ticket, []).append((kit, door, at_of(at), order))
    return out


def admitted_people(conn: Connection, scope: Scope) -> int:
    q = scope.where(sa.select(sa.func.count(sa.distinct(A.c.ticket_key))).where(A.c.first_entry, not_undone()), A)
    return int(conn.execute(q).scalar() or 0)


def admissions_per_quarter(conn: Connection, scope: Scope) -> list[tuple[datetime, int]]:
    bucket = (A.c.at_ms // QUARTER_MS).label("q")
    q = scope.where(sa.select(bucket, sa.func.count()).where(A.c.first_entry, not_undone()).group_by(bucket), A)
    return [(at_of(int(b) * QUARTER_MS), int(n)) for b, n in conn.execute(q)]


def merch_totals(conn: Connection, scope: Scope) -> tuple[int, int, int]:
    """(sales, items net of refunds, takings net of refunds)."""
    sales = conn.execute(scope.where(sa.select(sa.func.count()).select_from(S).where(S.c.sign > 0), S)).scalar()
    items = conn.execute(scope.where(sa.select(_signed(L.c.sign * L.c.qty)), L)).scalar()
    takings = conn.execute(scope.where(sa.select(_signed(S.c.sign * S.c.total_cents)), S)).scalar()
    return int(sales or 0), int(items or 0), int(takings or 0)


def takings_by_kit(conn: Connection, scope: Scope) -> list[tuple[str, int]]:
    q = scope.where(sa.select(S.c.kit, _signed(S.c.sign * S.c.total_cents)).group_by(S.c.kit), S)
    return sorted((k, int(n)) for k, n in conn.execute(q))


def currency(conn: Connection, scope: Scope) -> str | None:
    q = scope.where(sa.select(S.c.currency).where(S.c.currency != "").order_by(S.c.kit, S.c.seq).limit(1), S)
    return conn.execute(q).scalar()


def price_combos(conn: Connection, scope: Scope, kits: list[str]) -> list[tuple[str, str, int]]:
    """Each (kit, sku, unit price) sold, for the kits that have a price list."""
    if not kits:
        return []
    q = scope.where(sa.select(L.c.kit, L.c.sku, L.c.unit_cents).where(L.c.sign > 0, L.c.sku != "", L.c.kit.in_(kits))
                    .group_by(L.c.kit, L.c.sku, L.c.unit_cents), L)
    return [(k, s, int(u)) for k, s, u in conn.execute(q)]


def price_lines(conn: Connection, scope: Scope, kits: list[str], flagged: list[tuple[str, str, int]]) -> list[tuple]:
    """Sold lines (not refunds) at a flagged price or with a discount: kit, receipt, sku, qty, unit, discount."""
    if not kits:
        return []
    wanted = L.c.discount_cents != 0
    if flagged:
        wanted = sa.or_(wanted, sa.tuple_(L.c.kit, L.c.sku, L.c.unit_cents).in_(flagged))
    q = scope.where(sa.select(L.c.kit, L.c.receipt, L.c.sku, L.c.qty, L.c.unit_cents, L.c.discount_cents)
                    .where(L.c.sign > 0, L.c.sku != "", L.c.kit.in_(kits), wanted)
                    .order_by(L.c.kit, L.c.seq, L.c.line_no), L)
    return [tuple(r) for r in conn.execute(q)]


def metric_series(conn: Connection, scope: Scope) -> tuple[list[tuple[float, str, str]], list[float], list[float]]:
    """What kit/metrics.numbers_from needs of the big types: admissions (time, person, method) and exits
    (rehearsal and undone scans left out), and the times of the sales no void undid; each in time order."""
    admissions = [(float(t), p, m) for t, p, m in conn.execute(scope.where(
        sa.select(A.c.metric_at, A.c.person, A.c.method).where(A.c.admitted, ~A.c.rehearsal, not_undone())
        .order_by(A.c.metric_at), A))]
    exits = [float(t) for (t,) in conn.execute(scope.where(
        sa.select(A.c.metric_at).where(~A.c.admitted, A.c.verdict == "exit", ~A.c.rehearsal, not_undone())
        .order_by(A.c.metric_at), A))]
    void = S.alias("void")
    unvoided = ~sa.exists().where(void.c.is_refund, void.c.kind == "void", void.c.original_id == S.c.sale_id)
    sales = [float(t) for (t,) in conn.execute(scope.where(
        sa.select(S.c.metric_at).where(~S.c.is_refund, S.c.kind == "sale", unvoided).order_by(S.c.metric_at), S))]
    return admissions, exits, sales
