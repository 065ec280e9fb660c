"""The reference documents a kit holds (catalogue, attendee list, run sheet…), copied to the site's mirrors.

A kit publishes the current version of each kind when it changes and whenever a mirror announces
itself; the mirror keeps it in its HQ store's ``hq_documents`` (scope ``kit``), so a spare restored
from the hub gets the dead kit's documents back with its ledger. A document larger than
MAX_DOC_BYTES is not mirrored (it would not fit the broker's message limit): HQ sends it again.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from pathlib import Path

from kit import topics
from sync.mirror_proto import MirrorRefused, check_kit

log = logging.getLogger("fieldkit.sync.mirror_docs")

MAX_DOC_BYTES = 512 * 1024
KIND_MAX = 64


def doc_topic(site: str, kit: str = "+") -> str:
    return f"{topics.SITE_ROOT}/{site}/mirror_doc/{kit}"


def current(db) -> list[dict]:
    """(kind, version, filename, sha256, path) of the newest version of each kind this kit holds."""
    return [dict(r) for r in db.query(
        "SELECT d.kind, d.version, d.filename, d.sha256, d.path FROM kit_documents d JOIN"
        " (SELECT kind, MAX(version) AS version FROM kit_documents GROUP BY kind) m"
        " ON d.kind = m.kind AND d.version = m.version ORDER BY d.kind")]


def message(kit: str, site: str, doc: dict) -> dict | None:
    try:
        content = Path(doc["path"]).read_bytes()
    except OSError as e:
        log.warning("event=mirror_doc_unreadable kind=%s path=%s error=%r", doc["kind"], doc["path"], str(e))
        return None
    if len(content) > MAX_DOC_BYTES:
        log.info("event=mirror_doc_skipped kind=%s bytes=%d reason=too_large", doc["kind"], len(content))
        return None
    return {"kit": kit, "site": site, "kind": doc["kind"], "version": doc["version"], "filename": doc["filename"],
            "sha256": hashlib.sha256(content).hexdigest(), "content": base64.b64encode(content).decode()}


def check(msg: object, topic_kit: str, site: str) -> dict:
    """A document message's fields, its content decoded and its hash checked; MirrorRefused if not."""
    if not isinstance(msg, dict):
        raise MirrorRefused("not_an_object")
    check_kit(topic_kit, "topic kit")
    if msg.get("kit") != topic_kit or msg.get("site") != site:
        raise MirrorRefused("kit_mismatch")
    kind, version, filename = msg.get("kind"), msg.get("version"), msg.get("filename")
    if not (isinstance(kind, str) and 0 < len(kind) <= KIND_MAX and isinstance(filename, str)
            and 0 < len(filename) <= 200 and type(version) is int and 0 < version < 1 << 31):
        raise MirrorRefused("bad_document")
    try:
        content = base64.b64decode(str(msg.get("content", "")), validate=True)
    except ValueError:
        raise MirrorRefused("bad_document", "content is not base64") from None
    if len(content) > MAX_DOC_BYTES or hashlib.sha256(content).hexdigest() != msg.get("sha256"):
        raise MirrorRefused("bad_document", "content does not match its sha256")
    return {"kind": kind, "version": version, "filename": filename, "sha256": msg["sha256"], "content": content}
