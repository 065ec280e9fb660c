"""Reference documents HQ hands to kits: ticket lists, keys, revocations, catalogue, stock, cue sheets.

Each ``put`` is a new version of (kind, scope). A kit is given, per kind, the newest version of the
most specific scope that applies to it: its own (``--kit``) before its site's (``--site``) before the
one for every kit. Kits ask for the manifest and download only what changed (a delta by document id).
"""

from __future__ import annotations

import hashlib
import logging
import re

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sync.hq import schema
from sync.hq.store import KIT_ID_RE, HQError, now_utc

log = logging.getLogger("fieldkit.hq.documents")
KIND_RE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
SCOPE_RANK = {"kit": 0, "site": 1, "all": 2}


def put_document(engine: Engine, kind: str, data: bytes, filename: str, site: str | None = None,
                 kit: str | None = None) -> dict:
    """Store a new version of a document for every kit, one site or one kit."""
    if not KIND_RE.match(kind):
        raise HQError(f"document kind {kind!r} must look like feature.name, e.g. pos.catalogue")
    if site and kit:
        raise HQError("give --site or --kit, not both")
    scope, value = ("kit", kit) if kit else ("site", site) if site else ("all", "")
    if value and not KIT_ID_RE.match(value):
        raise HQError(f"{scope} id {value!r} may only use letters, digits, - and _")
    if not data:
        raise HQError(f"{filename}: the file is empty")
    if len(data) > MAX_DOCUMENT_BYTES:
        raise HQError(f"{filename}: {len(data)} bytes is larger than the {MAX_DOCUMENT_BYTES} byte limit", 413)
    t = schema.documents
    for _attempt in range(3):  # two organisers putting the same kind at once: the loser takes the next version
        try:
            with engine.begin() as conn:
                current = conn.execute(sa.select(sa.func.max(t.c.version)).where(
                    t.c.kind == kind, t.c.scope == scope, t.c.scope_value == value)).scalar() or 0
                row = {"kind": kind, "scope": scope, "scope_value": value, "version": current + 1,
                       "filename": filename[:200], "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                       "content": data, "created_at": now_utc()}
                new_id = conn.execute(t.insert().values(**row).returning(t.c.id)).scalar_one()
            log.info("event=document_put kind=%s scope=%s value=%s version=%s id=%s", kind, scope, value,
                     row["version"], new_id)
            return {"id": new_id, **{k: v for k, v in row.items() if k != "content"}}
        except sa.exc.IntegrityError:
            continue
    raise HQError("another document of this kind was being stored at the same time; try again", 409, "conflict")


def _meta_columns():
    t = schema.documents
    return [t.c.id, t.c.kind, t.c.scope, t.c.scope_value, t.c.version, t.c.filename, t.c.sha256, t.c.size,
            t.c.created_at]


def list_documents(engine: Engine) -> list[dict]:
    t = schema.documents
    with engine.connect() as conn:
        rows = conn.execute(sa.select(*_meta_columns()).order_by(t.c.kind, t.c.scope, t.c.scope_value, t.c.version))
        return [dict(r._mapping) for r in rows]


def manifest_for_kit(engine: Engine, kit: str, site: str) -> list[dict]:
    """The document each kind resolves to for this kit (see the module doc for the precedence)."""
    t = schema.documents
    applies = sa.or_(t.c.scope == "all", sa.and_(t.c.scope == "site", t.c.scope_value == site),
                     sa.and_(t.c.scope == "kit", t.c.scope_value == kit))
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(*_meta_columns()).where(applies))]
    best: dict[str, dict] = {}
    for row in rows:
        cur = best.get(row["kind"])
        key = (SCOPE_RANK[row["scope"]], -row["version"])
        if cur is None or key < (SCOPE_RANK[cur["scope"]], -cur["version"]):
            best[row["kind"]] = row
    return [{**row, "created_at": row["created_at"].isoformat()} for _, row in sorted(best.items())]


def document_content(engine: Engine, doc_id: int, kit: str, site: str) -> tuple[dict, bytes]:
    """A document's bytes, only if it applies to this kit (a kit cannot read another site's lists)."""
    t = schema.documents
    with engine.connect() as conn:
        row = conn.execute(sa.select(t).where(t.c.id == doc_id)).first()
    if row is None or not (row.scope == "all" or (row.scope == "site" and row.scope_value == site)
                           or (row.scope == "kit" and row.scope_value == kit)):
        raise HQError(f"no document {doc_id} for kit {kit}", 404, "not_found")
    meta = {k: v for k, v in row._mapping.items() if k != "content"}
    return meta, bytes(row.content)


def latest_content(engine: Engine, kind: str, site: str | None = None) -> tuple[dict, bytes] | None:
    """The newest document of ``kind`` for a site (else for every kit): what the reconciliation prices against."""
    t = schema.documents
    scopes = [("site", site)] if site else []
    scopes.append(("all", ""))
    with engine.connect() as conn:
        for scope, value in scopes:
            row = conn.execute(sa.select(t).where(t.c.kind == kind, t.c.scope == scope, t.c.scope_value == value)
                               .order_by(t.c.version.desc()).limit(1)).first()
            if row is not None:
                return {k: v for k, v in row._mapping.items() if k != "content"}, bytes(row.content)
    return None


def all_contents(engine: Engine, kind: str) -> list[tuple[dict, bytes]]:
    """The newest document of ``kind`` per scope (used for per-kit stock allocations)."""
    t = schema.documents
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t).where(t.c.kind == kind).order_by(t.c.version)).all()
    newest: dict[tuple[str, str], object] = {}
    for row in rows:
        newest[(row.scope, row.scope_value)] = row
    return [({k: v for k, v in r._mapping.items() if k != "content"}, bytes(r.content)) for r in newest.values()]
