"""Attendee privacy on the site's mirror (sync/mirror_hub.py): a kit's erasure reaches its mirrored copy.

The mirror holds a kit's events and raw documents to restore it if it dies. When the kit's
``kit.personal_data_erased`` event is stored, the mirror removes that kit's mirrored documents (an
attendee list among them); when its ``kit.ledger_truncated`` event follows (the kit truncated the events
before the erasure once HQ held them), the mirror deletes its copy of those events too, up to the same
checkpoint. Deleted rows are overwritten (secure_delete), then the file is vacuumed, as on the kit.
A restore from the hub then finds a chain that starts after the checkpoint, and refuses it plainly
(sync/restore.py). A truncation by age alone (``ledger.keep_days``, no erasure) leaves the mirror whole.

The events come over the site's MQTT: only a truncation that links into the chain the mirror holds (its
checkpoint hash is the hash the mirror holds at that seq) is acted on.
"""

from __future__ import annotations

import json
import logging

import sqlalchemy as sa

from kit.ledger import TRUNCATED_EVENT
from sync.hq import facts, schema

log = logging.getLogger("fieldkit.sync.mirror_privacy")
ERASED_EVENT = "kit.personal_data_erased"  # kit/privacy.py (sync never imports it: only the name is shared)


def _payload(record: dict) -> dict:
    p = record.get("payload")
    if isinstance(p, str):
        try:
            p = json.loads(p)
        except ValueError:
            return {}
    return p if isinstance(p, dict) else {}


def follow(engine, kit: str, stored: list[dict]) -> dict:
    """After ``stored`` (records just kept of ``kit``): erase what the kit erased. What went, per place."""
    did = {"documents": 0, "events": 0}
    for record in stored:
        if record.get("type") == ERASED_EVENT:
            did["documents"] += erase_documents(engine, kit)
        elif record.get("type") == TRUNCATED_EVENT:
            did["events"] += truncate(engine, kit, record)
    if did["documents"] or did["events"]:
        compact(engine)
        log.info(
            "event=mirror_personal_data_erased kit=%s documents=%d events=%d",
            kit,
            did["documents"],
            did["events"],
        )
    return did


def erase_documents(engine, kit: str) -> int:
    t = schema.documents
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA secure_delete=ON")
        return conn.execute(t.delete().where(t.c.scope == "kit", t.c.scope_value == kit)).rowcount


def truncate(engine, kit: str, record: dict) -> int:
    p, ev = _payload(record), schema.events.c
    through, cp_hash, seq = p.get("through_seq"), p.get("checkpoint_hash"), record.get("seq")
    if not (type(through) is int and type(seq) is int and 0 < through < seq and isinstance(cp_hash, str)):
        log.warning("event=mirror_truncation_ignored kit=%s seq=%r reason=bad_payload", kit, seq)
        return 0
    with engine.begin() as conn:
        erased = conn.execute(
            sa.select(sa.func.count()).where(
                ev.kit == kit, ev.type == ERASED_EVENT, ev.seq > through, ev.seq < seq
            )
        ).scalar()
        if not erased:
            return 0  # by age only: the mirror keeps the whole chain for a restore
        held = conn.execute(sa.select(ev.hash).where(ev.kit == kit, ev.seq == through)).scalar()
        if held is not None and held != cp_hash:
            log.warning(
                "event=mirror_truncation_ignored kit=%s through=%d reason=checkpoint_not_in_chain",
                kit,
                through,
            )
            return 0
        conn.exec_driver_sql("PRAGMA secure_delete=ON")
        facts.delete_through(conn, kit, through)
        return conn.execute(schema.events.delete().where(ev.kit == kit, ev.seq <= through)).rowcount


def compact(engine) -> None:
    """Free pages and the WAL go too: the deleted rows' bytes must not stay in the file."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        raw.execute("VACUUM")
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
