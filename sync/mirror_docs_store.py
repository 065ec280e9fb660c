"""The hub's side of mirrored documents: kept in the mirror's HQ store (``hq_documents``, scope ``kit``).

Apart from sync/mirror_docs.py (the message format, and what a kit sends) because it needs SQLAlchemy,
which a kit that only sends never loads (about 15 MB in the service group's process).
"""

from __future__ import annotations

import base64
import logging

import sqlalchemy as sa

from sync.hq import schema, store

log = logging.getLogger("fieldkit.sync.mirror_docs")


def keep(engine, kit: str, doc: dict) -> bool:
    """Store one kit's document in the mirror's HQ store; False if it held that version already."""
    t = schema.documents
    with engine.begin() as conn:
        held = conn.execute(sa.select(t.c.id).where(t.c.kind == doc["kind"], t.c.scope == "kit",
                                                    t.c.scope_value == kit, t.c.version == doc["version"])).first()
        if held:
            return False
        conn.execute(t.insert().values(kind=doc["kind"], scope="kit", scope_value=kit, version=doc["version"],
                                       filename=doc["filename"], sha256=doc["sha256"], size=len(doc["content"]),
                                       content=doc["content"], created_at=store.now_utc()))
    log.info("event=mirror_doc_stored kit=%s kind=%s version=%d", kit, doc["kind"], doc["version"])
    return True


def latest(engine, kit: str) -> list[dict]:
    """The newest mirrored version of each kind of a kit, as restore messages carry them."""
    t = schema.documents
    out: dict[str, dict] = {}
    with engine.connect() as conn:
        for r in conn.execute(sa.select(t).where(t.c.scope == "kit", t.c.scope_value == kit).order_by(t.c.version)):
            out[r.kind] = {"kind": r.kind, "version": r.version, "filename": r.filename, "sha256": r.sha256,
                           "content": base64.b64encode(r.content).decode()}
    return list(out.values())
