"""A continuous replica of this kit on a USB drive (or ``backup.path``), for a kit that is alone.

Layout, under ``<backup folder>/<kit id>/``:

- ``ledger.jsonl``: one event per line, as uploaded to HQ, appended and fsync'd as the ledger grows;
- ``state.json``: the seq and hash the ledger file is complete up to (written to a temporary file,
  fsync'd, renamed): a reader trusts ``ledger.jsonl`` only as far as its chain verifies, and never
  past ``state.json``, so a stick pulled mid-write never reads as more complete than it is;
- ``documents/``: the newest version of each reference document, with ``documents.json``;
- ``snapshots/kit-<time>.db``: a consistent copy of the whole database (SQLite's online backup API),
  written under a temporary name and renamed when complete, the last two kept.

A truncated ledger (kit/ledger.py: personal data erased, or ``ledger.keep_days``) starts after its
checkpoint: when the kit's checkpoint moves, the replica overwrites and removes every file it holds
(old events, snapshots and documents may name people) and writes itself again from the checkpoint,
with a fresh snapshot; ``state.json`` then names the checkpoint (``from``, ``from_hash``) its chain
starts at. Such a replica verifies, but `fieldkit restore` refuses it plainly (sync/restore.py).

The drive is hostile too: a torn last line, a line that does not parse or does not link, are cut off
(``event=replica_torn``) and written again from the ledger. Any OSError (the stick pulled, full,
read-only) marks the replica unavailable and is tried again later; the kit never waits for it.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from pathlib import Path

from kit.ledger import GENESIS, checkpoint, events_after, last_seq
from sync import mirror_docs

log = logging.getLogger("fieldkit.sync.replica")

USB_MOUNT = Path("/media/fieldkit-usb")
USB_FOLDER = "fieldkit-backup"
BATCH = 500
SNAPSHOTS_KEPT = 2


def target(config) -> Path | None:
    """The replica's folder for this kit, or None when there is no backup folder to write to."""
    base = Path(config["backup.path"]) if config["backup.path"] else USB_MOUNT / USB_FOLDER
    return base / config.kit_id if base.is_dir() else None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def scan(ledger_file: Path, kit: str, start: tuple[int, str] = (0, GENESIS)) -> tuple[int, str, int, str]:
    """(seq, hash, byte length) of the leading run of lines that is ``kit``'s chain from seq 1 (or from the
    checkpoint ``start``); and why it stops."""
    from sync.restore import check_records

    if not ledger_file.exists():
        return 0, GENESIS, 0, ""
    lengths, records, problem = [], [], ""
    with open(ledger_file, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                problem = "the last line is incomplete (a torn write)"
                break
            try:
                records.append(json.loads(line))
            except ValueError:
                problem = f"line {len(records) + 1} is not JSON"
                break
            lengths.append(len(line))
    try:
        checked = check_records(records, kit, start)
    except Exception as e:  # noqa: BLE001 - another kit's file: nothing of it is ours
        return 0, GENESIS, 0, str(e)
    problem = checked.problem or problem
    good_bytes = sum(lengths[:len(checked.rows)])
    top = checked.rows[-1] if checked.rows else None
    return (top["seq"] if top else start[0]), (top["hash"] if top else start[1]), good_bytes, problem


class ReplicaWriter:
    def __init__(self, config, db):
        self.config, self.db, self.kit = config, db, config.kit_id
        self.folder: Path | None = None
        self.upto, self.hash = 0, GENESIS
        self.state = "absent"
        self.error = ""
        self._snapshot_at = 0.0
        self._docs: dict[str, int] = {}
        self.start = (0, GENESIS)  # the checkpoint the replica's chain starts at

    def _kit_start(self) -> tuple[int, str]:
        cp = checkpoint(self.db.conn)
        return (cp.seq, cp.hash) if cp else (0, GENESIS)

    def _open(self, folder: Path) -> None:
        """Take a (re)appeared folder: verify what it holds, cut a torn tail, continue after it."""
        folder.mkdir(exist_ok=True)
        ledger_file = folder / "ledger.jsonl"
        start = self._kit_start()
        if _state(folder).get("from", 0) != start[0] and ledger_file.exists():
            self.wipe(folder)  # written before the kit truncated: it holds what the kit no longer does
        self.start = start
        seq, digest, good, problem = scan(ledger_file, self.kit, start)
        if seq > last_seq(self.db):
            raise OSError(f"the replica holds seq {seq}, beyond this kit's ledger: another kit's with this id?")
        if problem:
            log.warning("event=replica_torn path=%s upto=%d reason=%r action=rewrite_after", ledger_file, seq, problem)
        if ledger_file.exists() and ledger_file.stat().st_size != good:
            with open(ledger_file, "r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())
        self.folder, self.upto, self.hash, self._docs = folder, seq, digest, {}
        self._snapshot_at = 0.0
        log.info("event=replica_opened path=%s upto=%d", folder, seq)

    def pump(self) -> int:
        """Bring the replica up to the ledger; returns events written. Never raises OSError."""
        folder = target(self.config)
        try:
            if folder is None:
                self._lost("absent", "no backup folder (backup.path, or a USB drive with fieldkit-backup)")
                return 0
            if folder != self.folder or self._kit_start() != self.start or not (folder / "ledger.jsonl").exists():
                self._open(folder)  # new folder, the kit truncated (an erasure), or the files were removed
            written = self._append()
            self._documents()
            if time.monotonic() - self._snapshot_at >= self.config["backup.snapshot_minutes"] * 60:
                self.snapshot()
            if self.state != "ok":
                log.info("event=replica_ok path=%s upto=%d", folder, self.upto)
            self.state, self.error = "ok", ""
            return written
        except (OSError, sqlite3.Error) as e:
            self._lost("unavailable", str(e))
            return 0

    def _lost(self, state: str, why: str) -> None:
        if self.state != state or self.error != why:
            log.warning("event=replica_%s reason=%r", state, why[:200])
        self.state, self.error, self.folder = state, why, None

    def _append(self) -> int:
        written = 0
        with open(self.folder / "ledger.jsonl", "ab") as f:
            while events := events_after(self.db, self.upto, BATCH):
                f.write(b"".join(json.dumps(e.as_dict(), separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
                                 for e in events))
                f.flush()
                os.fsync(f.fileno())
                self.upto, self.hash = events[-1].seq, events[-1].hash
                written += len(events)
        if written or not (self.folder / "state.json").exists():
            write_atomic(self.folder / "state.json", json.dumps(
                {"kit": self.kit, "upto": self.upto, "hash": self.hash, "at": time.time(), "from": self.start[0],
                 "from_hash": self.start[1]}).encode())
        return written

    def _documents(self) -> None:
        docs_dir = self.folder / "documents"
        changed = False
        for doc in mirror_docs.current(self.db):
            if self._docs.get(doc["kind"]) == doc["version"]:
                continue
            if not doc["path"] or not Path(doc["path"]).is_file():
                continue  # its raw copy was erased (attendee privacy): the kit holds none to back up
            docs_dir.mkdir(exist_ok=True)
            name = f"{doc['kind']}.v{doc['version']}"
            write_atomic(docs_dir / name, Path(doc["path"]).read_bytes())
            self._docs[doc["kind"]] = doc["version"]
            changed = True
        if changed:
            manifest = [{"kind": d["kind"], "version": d["version"], "filename": d["filename"], "sha256": d["sha256"],
                         "file": f"{d['kind']}.v{d['version']}"} for d in mirror_docs.current(self.db)
                        if self._docs.get(d["kind"]) == d["version"]]
            write_atomic(docs_dir / "documents.json", json.dumps(manifest).encode())

    def snapshot(self) -> Path | None:
        """A consistent copy of the whole database on the drive (online backup: the kit keeps writing);
        None when an erasure overtook it (the next pump makes a fresh one)."""
        snaps = self.folder / "snapshots"
        snaps.mkdir(exist_ok=True)
        final = snaps / f"kit-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.db"
        tmp = final.with_name(final.name + ".tmp")
        dest = sqlite3.connect(tmp)
        try:
            self.db.conn.backup(dest)
            copied = _erasures(dest)
        finally:
            dest.close()
        if _erasures(self.db.conn) > copied:
            # An erasure committed while this copy was made: it holds the names the erasure removed, and
            # the erasure has already shredded the replica. It never reaches the drive's snapshots.
            from kit.privacy import shred

            shred(tmp)
            log.info("event=replica_snapshot_dropped reason='personal data erased while it was copied'")
            return None
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
        _fsync_dir(snaps)
        for old in sorted(snaps.glob("kit-*.db"))[:-SNAPSHOTS_KEPT]:
            old.unlink()
        self._snapshot_at = time.monotonic()
        log.info("event=replica_snapshot path=%s", final)
        return final

    def wipe(self, folder: Path) -> None:
        """Overwrite and remove every file of the replica (the ledger, its state, snapshots, documents)."""
        from kit.privacy import shred

        files = replica_files(folder)
        for path in files:
            shred(path)
        self._docs, self._snapshot_at = {}, 0.0
        log.info("event=replica_wiped path=%s files=%d reason='the kit truncated its ledger'", folder, len(files))

    def status(self) -> dict:
        return {"state": self.state, "path": str(self.folder or ""), "upto": self.upto, "error": self.error,
                "last_seq": last_seq(self.db)}


def _erasures(conn) -> int:
    """How many personal-data erasures a database records (0 before the privacy tables exist)."""
    try:
        return conn.execute("SELECT COUNT(*) FROM kit_privacy_erasures").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def replica_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) if folder.is_dir() else []


def _state(folder: Path) -> dict:
    try:
        state = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def read_replica(path, kit: str) -> tuple[list[dict], list[dict]]:
    """A replica's events (as far as its chain verifies, never past its state.json) and documents."""
    import base64
    import hashlib

    from sync.restore import RestoreError

    folder = Path(path)
    if not (folder / "ledger.jsonl").exists() and (folder / kit / "ledger.jsonl").exists():
        folder = folder / kit
    if not (folder / "ledger.jsonl").exists():
        raise RestoreError(f"{path} holds no replica of kit {kit} (no ledger.jsonl)")
    state = _state(folder)
    if state.get("kit") not in (None, kit):
        raise RestoreError(f"{path} is the replica of kit {str(state.get('kit'))[:40]!r}, not of this kit ({kit})")
    start = (state.get("from"), state.get("from_hash"))
    if not (isinstance(start[0], int) and start[0] >= 0 and isinstance(start[1], str)):
        start = (0, GENESIS)
    seq, _, good, problem = scan(folder / "ledger.jsonl", kit, start)
    if problem:
        log.warning("event=replica_torn path=%s upto=%d reason=%r", folder, seq, problem)
    limit = min(seq, int(state.get("upto", seq)))
    records = []
    with open(folder / "ledger.jsonl", "rb") as f:
        for line in f.read(good).splitlines():
            record = json.loads(line)
            if record["seq"] > limit:
                break
            records.append(record)
    documents = []
    try:
        manifest = json.loads((folder / "documents" / "documents.json").read_text())
    except (OSError, ValueError):
        manifest = []
    for doc in manifest if isinstance(manifest, list) else []:
        try:
            content = (folder / "documents" / Path(str(doc["file"])).name).read_bytes()
        except (OSError, KeyError, TypeError):
            continue
        if hashlib.sha256(content).hexdigest() == doc.get("sha256"):
            documents.append({**doc, "content": base64.b64encode(content).decode()})
    return records, documents


def latest_snapshot(folder: Path) -> Path | None:
    snaps = sorted((folder / "snapshots").glob("kit-*.db")) if (folder / "snapshots").is_dir() else []
    return snaps[-1] if snaps else None

