"""The sync agent's part in attendee privacy (kit/privacy.py calls these through the registration).

``acknowledged_seq``: the highest seq HQ holds of this kit's ledger, directly or through the site's hub:
the agent's cursor (every seq at or below it was answered by HQ) or what the hub's relay reports HQ holds
(``hq_upto`` in its mirror acknowledgement, sync/mirror.py), whichever is higher — but never past a parked
record, which HQ refused and may yet need again. A kit that is not joined itself but whose hub relayed
its events is held by HQ all the same.
``erase_personal_data``: the documents downloaded from HQ are transport copies (an attendee list
among them); each was handed to its owning feature's importer, which keeps its own copy (erased by
that feature), so every downloaded copy goes. So does every file of the USB replica (sync/replica.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

from kit.ledger import checkpoint, last_seq
from sync import replica

log = logging.getLogger("fieldkit.sync")


def acknowledged_seq(db, config) -> int | None:
    url = (config["sync.hq_url"] or "").strip().rstrip("/")
    relayed = relayed_upto(db)
    if not url and not relayed:
        return None  # neither joined nor relayed: HQ holds nothing of this kit that it knows of
    cursor = int(db.scalar("SELECT cursor FROM sync_cursor WHERE hq_url = ?", (url,)) or 0) if url else 0
    held = max(cursor, relayed)
    parked = db.scalar("SELECT MIN(seq) FROM sync_parked")
    return min(held, int(parked) - 1) if parked is not None else held


def relayed_upto(db) -> int:
    """What a site mirror relayed of HQ's acknowledgement: never past what that mirror itself holds, nor
    past this kit's ledger (an acknowledgement comes over the site's MQTT: a peer's word, checked)."""
    relayed = int(db.scalar("SELECT COALESCE(MAX(MIN(hq_upto, upto)), 0) FROM sync_mirror_cursor") or 0)
    return min(relayed, last_seq(db))


def erase_personal_data(ctx) -> None:
    paths = [Path(r[0]) for r in ctx.conn.execute("SELECT path FROM sync_documents WHERE path != ''")]
    ctx.remove_files("documents downloaded from HQ (files)", paths)
    ctx.run("UPDATE sync_documents SET path = '' WHERE path != ''")
    # The USB replica holds old events, snapshots of every table and the raw lists: all of it goes. The
    # sync service's replica writer writes it again from the truncated ledger, with a fresh snapshot.
    folder = replica.target(ctx.config)
    if folder is not None:
        ctx.remove_files(
            "the USB replica: ledger copy, snapshots, documents (files)", replica.replica_files(folder)
        )


def holes_above_checkpoint(db, holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Holes HQ reports that this kit can still fill: events it truncated (after HQ acknowledged them) are gone."""
    cp = checkpoint(db.conn)
    if cp is None:
        return holes
    gone = [(a, min(b, cp.seq)) for a, b in holes if a <= cp.seq]
    if gone:
        log.warning(
            "event=hq_missing_truncated_events ranges=%s reason='HQ acknowledged them, then lost them; "
            "the kit truncated them and cannot send them again'",
            ",".join(f"{a}-{b}" for a, b in gone),
        )
    return [(max(a, cp.seq + 1), b) for a, b in holes if b > cp.seq]
