"""The report's facts, kept at ingest: each sale, line, payment and scan as typed columns beside its event.

The reconciliation report over a fleet's night (a million events) cannot parse every payload in
Python each time: it took 45–91 s and 2.5 GB. So the payload fields the report adds up are taken out
once, when the event is stored, in the same transaction (``store_for``), and the report's big
sections are GROUP BYs over these tables (sync/hq/report_facts.py). Only the types a night has by
the hundred thousand go here — ``pos.sale``, ``pos.refund``, ``checkin.scanned`` and the undo of a
scan; shifts, drops, run-sheet and incidents stay in ``hq_events`` and are read as before.

Payloads are another kit's words: a field of the wrong type counts as the report always counted it
(``sections.as_int``: 0), text is cut to its column. A store made before these tables is filled once
(``ensure``) the first time it is opened; the marker ``hq_meta.facts`` says it was.
"""

from __future__ import annotations

import json
import logging

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from kit.metrics import admission_method, event_time
from sync.hq import schema

log = logging.getLogger("fieldkit.hq.facts")

FACTS_VERSION = "1"
SALE_TYPES = ("pos.sale", "pos.refund")
SCAN_TYPE, UNDO_TYPE = "checkin.scanned", "checkin.undone"
TYPES = (*SALE_TYPES, SCAN_TYPE, UNDO_TYPE)
BACKFILL_CHUNK = 5000


def _int(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and -2**62 < value < 2**62 else 0


def _text(value, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _ms(at) -> int:
    return int(at.timestamp() * 1000)


def extract(row: dict, payload: dict | None = None) -> dict[str, list[dict]]:
    """The fact rows of one stored event (``row``: hq_events' columns, ``event_time`` an aware datetime)."""
    type_ = row["type"]
    if type_ not in TYPES:
        return {}
    payload = payload if payload is not None else row.get("_payload")
    if payload is None:
        try:
            payload = json.loads(row["payload"])
        except ValueError:
            return {}
    if not isinstance(payload, dict):
        return {}
    base = {"event_id": row["id"], "kit": row["kit"], "seq": int(row["seq"]), "at_ms": _ms(row["event_time"])}
    if type_ == UNDO_TYPE:
        scan = payload.get("scan_event_id")
        return {"undo": [{"kit": row["kit"], "scan_event_id": scan[:64]}]} if isinstance(scan, str) else {}
    metric_at = event_time(payload, row["event_time"])
    if type_ == SCAN_TYPE:
        ticket = payload.get("ticket_key")
        ticket = str(ticket)[:128] if ticket else ""
        admitted = payload.get("admitted")
        verdict = _text(payload.get("verdict"), 32)
        return {"scan": [{**base, "metric_at": metric_at, "ticket_key": ticket,
                          "person": ticket or f"{row['kit']}:{metric_at}", "admitted": bool(admitted),
                          "first_entry": admitted is True and verdict == "admit" and bool(ticket)
                          and not payload.get("rehearsal"),
                          "verdict": verdict, "rehearsal": bool(payload.get("rehearsal")),
                          "door": str(payload.get("door", ""))[:64], "order_code": str(payload.get("order_code", ""))[:40],
                          "method": admission_method(payload)}]}
    kind = _text(payload.get("kind"), 16) or "sale"
    sign = -1 if type_ == "pos.refund" or kind in ("refund", "void") else 1
    lines = payload.get("lines", [])
    if not isinstance(lines, list):
        return {}  # not a sale the report can read (as before: left out of every sales figure)
    receipt = str(payload.get("receipt", ""))[:64]
    shift = payload.get("shift_id")
    shift = str(shift)[:64] if shift else ""
    sale = {**base, "metric_at": metric_at, "is_refund": type_ == "pos.refund", "kind": kind, "sign": sign,
            "sale_id": str(payload.get("id"))[:64], "original_id": _text(payload.get("original_id"), 64),
            "receipt": receipt, "shift_id": shift, "total_cents": _int(payload.get("total_cents")),
            "currency": _text(payload.get("currency"), 8)}
    out_lines = []
    for n, ln in enumerate(lines):
        if not isinstance(ln, dict):
            continue
        sku = str(ln["sku"])[:64] if ln.get("sku") else ""
        out_lines.append({**base, "line_no": n, "sign": sign, "receipt": receipt, "sku": sku,
                          "name": f"{ln.get('name', '')} {ln.get('variant', '')}".strip()[:120],
                          "qty": _int(ln.get("qty")), "total_cents": _int(ln.get("total_cents")),
                          "unit_cents": _int(ln.get("unit_cents")), "discount_cents": _int(ln.get("discount_cents")),
                          "moves_stock": bool(ln.get("moves_stock", True))})
    payments = payload.get("payments", [])
    out_pay = []
    for n, pay in enumerate(payments if isinstance(payments, list) else []):
        if isinstance(pay, dict):
            out_pay.append({**base, "idx": n, "sign": sign, "receipt": receipt, "shift_id": shift,
                            "method": str(pay.get("method", "?"))[:32], "amount_cents": _int(pay.get("amount_cents")),
                            "reference": str(pay.get("reference", "") or "")[:100]})
    return {"sale": [sale], "line": out_lines, "payment": out_pay}


TABLES = {"sale": schema.sale_facts, "line": schema.line_facts, "payment": schema.payment_facts,
          "scan": schema.scan_facts, "undo": schema.undo_facts}


def _dialect_insert(conn):
    if conn.engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def _insert_sql(table: sa.Table, mark: str) -> str:
    names = [c.name for c in table.columns]
    return (f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join([mark] * len(names))})"
            " ON CONFLICT DO NOTHING")


_SQL = {dialect: {name: _insert_sql(t, mark) for name, t in TABLES.items()}
        for dialect, mark in (("postgresql", "%s"), ("sqlite", "?"))}


def store_for(conn, rows: list[dict], new: bool = True) -> int:
    """Store the facts of these events on ``conn`` (inside the caller's transaction).

    ``new``: the events were stored by this very transaction (ingest), so none of their facts can exist
    yet and PostgreSQL takes them by COPY; otherwise (a backfill, the row-by-row path) an insert that
    skips what is there. Straight through the driver, not SQLAlchemy's insert: at a fleet's ingest rate
    the round trips show (bench/hq_fleet.py: executemany, even pipelined, halved HQ's events/s)."""
    found: dict[str, list[tuple]] = {}
    for row in rows:
        for name, facts in extract(row).items():
            columns = TABLES[name].columns.keys()
            found.setdefault(name, []).extend(tuple(f[c] for c in columns) for f in facts)
    dialect = "postgresql" if conn.engine.dialect.name == "postgresql" else "sqlite"
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        for name, facts in found.items():
            if not facts:
                continue
            if dialect == "postgresql" and new:
                columns = ", ".join(TABLES[name].columns.keys())
                with cursor.copy(f"COPY {TABLES[name].name} ({columns}) FROM STDIN") as copy:
                    for fact in facts:
                        copy.write_row(fact)
            else:
                cursor.executemany(_SQL[dialect][name], facts)
    finally:
        cursor.close()
    return sum(len(f) for f in found.values())


def delete_through(conn, kit: str, through: int) -> None:
    """A mirror's kit truncated its ledger through ``through`` (sync/mirror_privacy.py): its facts go too."""
    for table in (schema.sale_facts, schema.line_facts, schema.payment_facts, schema.scan_facts):
        conn.execute(table.delete().where(table.c.kit == kit, table.c.seq <= through))


def _marked(conn) -> bool:
    m = schema.meta
    return conn.execute(sa.select(m.c.value).where(m.c.key == "facts")).scalar() == FACTS_VERSION


def ensure(engine: Engine) -> int:
    """Fill the facts of a store made before them (or written around ingest, as a bulk COPY); once."""
    with engine.connect() as conn:
        if _marked(conn):
            return 0
    n = backfill(engine)
    with engine.begin() as conn:
        if not _marked(conn):
            conn.execute(_meta_upsert(conn), [{"key": "facts", "value": FACTS_VERSION}])
    log.info("event=hq_facts_backfilled facts=%d", n)
    return n


def _meta_upsert(conn):
    stmt = _dialect_insert(conn)(schema.meta)
    return stmt.on_conflict_do_update(index_elements=["key"], set_={"value": stmt.excluded.value})


def backfill(engine: Engine, chunk: int = BACKFILL_CHUNK) -> int:
    """Facts for every stored event of the fact types, in chunks of ``chunk`` events (idempotent)."""
    e = schema.events.c
    cols = (e.id, e.kit, e.seq, e.type, e.payload, e.event_time)
    total, after = 0, ""
    while True:
        with engine.connect() as conn:
            batch = [dict(r._mapping) for r in conn.execute(
                sa.select(*cols).where(e.type.in_(TYPES), e.id > after).order_by(e.id).limit(chunk))]
        if not batch:
            return total
        for r in batch:
            if r["event_time"].tzinfo is None:
                from datetime import UTC

                r["event_time"] = r["event_time"].replace(tzinfo=UTC)
        with engine.begin() as conn:
            total += store_for(conn, batch, new=False)  # ingest may be storing some beside it
        after = batch[-1]["id"]
