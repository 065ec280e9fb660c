"""Documents from HQ: download the ones this kit lacks, store them, apply them with the owning importer."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime

from kit import topics
from kit.files import safe_filename, write_durably
from sync.client import HQClient, SyncError

log = logging.getLogger("fieldkit.sync")


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def pull_documents(config, db, bus, client: HQClient) -> list[dict]:
    """Download each document whose HQ id we do not have yet; store, apply if we can, announce."""
    known = {r[0] for r in db.query("SELECT hq_id FROM sync_documents")}
    received = []
    for meta in client.manifest():
        if meta["id"] in known:
            continue
        data = client.download(meta["id"])
        if hashlib.sha256(data).hexdigest() != meta["sha256"]:
            raise SyncError(f"document {meta['kind']} v{meta['version']} arrived damaged (checksum differs)")
        received.append(store_document(config, db, bus, meta, data))
    return received


def store_document(config, db, bus, meta: dict, data: bytes) -> dict:
    """Keep one of HQ's documents (from HQ, or passed on by the site's hub) and apply it with its importer."""
    from kit.documents import DocumentError, document_kinds, import_document

    folder = config.data_dir / "sync" / "documents" / meta["kind"]
    folder.mkdir(parents=True, exist_ok=True)
    path = write_durably(folder / f"{meta['id']:06d}-{safe_filename(meta['filename'])}", data)
    applied, local_version, outcome = False, None, "stored; no importer for this kind on this kit"
    kinds = document_kinds()
    if config["sync.apply_documents"] and meta["kind"] in kinds:
        try:
            record, report = import_document(
                config,
                db,
                meta["kind"],
                data,
                meta["filename"],
                source="hq",
                source_version=str(meta["id"]),
                kinds=kinds,
            )
            applied, local_version, outcome = True, record.version if record else None, report.summary()
        except DocumentError as e:
            outcome = f"not imported: {e}"
        except Exception as e:  # an importer's bug must not stop sync; the lead sees the reason
            log.exception("event=document_import_crashed kind=%s", meta["kind"])
            outcome = f"not imported: {e.__class__.__name__}: {e}"
    elif meta["kind"] in kinds:
        outcome = "stored; sync.apply_documents is off, the owning feature applies it"
    with db.transaction() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO sync_documents (hq_id, kind, hq_version, scope, filename, sha256, path,"
            " received_at, applied, local_version, result) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                meta["id"],
                meta["kind"],
                meta["version"],
                meta.get("scope", ""),
                meta["filename"],
                meta["sha256"],
                str(path),
                utc_now(),
                int(applied),
                local_version,
                outcome,
            ),
        )
    announcement = {
        "kind": meta["kind"],
        "path": str(path),
        "version": local_version,
        "source_version": str(meta["id"]),
        "hq_version": meta["version"],
        "filename": meta["filename"],
        "applied": applied,
        "result": outcome,
    }
    if bus is not None:
        bus.publish(topics.event(config.kit_id, *topics.SYNC_DOCUMENT), announcement, qos=1)
    log.info(
        "event=document_received kind=%s hq_id=%s applied=%s result=%r",
        meta["kind"],
        meta["id"],
        applied,
        outcome,
    )
    return announcement
