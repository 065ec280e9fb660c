"""HQ's store of personal records (kit/personal.py): each kit's records once, by the id the kit made.

What a kit sends is hostile like everything on the network: every record is checked (id, kind, a JSON
object of at most 8 KiB with no NUL) and answered for on its own; a duplicate from the same kit is a
``duplicate`` (the kit lost the answer and sent it again), the same id from another kit is refused.
"""

from __future__ import annotations

import json
import logging
import re

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sync.hq import schema
from sync.hq.store import now_utc

log = logging.getLogger("fieldkit.hq.personal")
ID_RE = re.compile(r"^[A-Za-z0-9-]{8,64}$")
KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}\.[a-z][a-z0-9_]{0,31}$")
MAX_RECORDS = 500
MAX_BODY = 8 * 1024


def _problem(record: object) -> str | None:
    if not isinstance(record, dict):
        return "a record must be an object"
    if not isinstance(record.get("id"), str) or not ID_RE.match(record["id"]):
        return "id must be 8-64 letters, digits or '-'"
    if not isinstance(record.get("kind"), str) or not KIND_RE.match(record["kind"]):
        return "kind must be <feature>.<name>"
    if not isinstance(record.get("body"), dict):
        return "body must be an object"
    text = json.dumps(record["body"], ensure_ascii=False)
    if len(text.encode()) > MAX_BODY or "\\u0000" in text or "\x00" in text:
        return f"body must be at most {MAX_BODY} bytes of text without NUL"
    return None


def store_personal(engine: Engine, kit: str, records: list) -> list[dict]:
    """Store what is new; answer ``stored``, ``duplicate`` or ``refused`` (with the reason) per record."""
    results: list[dict] = []
    good: dict[str, dict] = {}
    for record in records:
        why = _problem(record)
        rid = record.get("id") if isinstance(record, dict) and isinstance(record.get("id"), str) else ""
        if why:
            results.append({"id": rid[:64], "status": "refused", "error": why})
            log.warning("event=personal_refused kit=%s reason=%r", kit, why)
        else:
            results.append({"id": rid, "status": "pending"})
            good[rid] = record
    t = schema.personal_records
    with engine.begin() as conn:
        held = {r.id: r.kit for r in conn.execute(sa.select(t.c.id, t.c.kit).where(t.c.id.in_(list(good))))} if good else {}
        now = now_utc()
        new = [{"id": rid, "kit": kit, "kind": r["kind"], "body": json.dumps(r["body"], ensure_ascii=False),
                "received_at": now} for rid, r in good.items() if rid not in held]
        if new:
            conn.execute(t.insert(), new)
    for result in results:
        if result["status"] != "pending":
            continue
        owner = held.get(result["id"])
        result["status"] = "stored" if owner is None else "duplicate" if owner == kit else "refused"
        if result["status"] == "refused":
            result["error"] = "another kit sent a record with this id"
    return results


def count_by_kind(engine: Engine, kits: list[str]) -> dict[str, int]:
    t = schema.personal_records
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.kind, sa.func.count()).where(t.c.kit.in_(kits)).group_by(t.c.kind))
        return {kind: n for kind, n in rows}
