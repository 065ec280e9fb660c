"""A release bundle HQ offers, streamed to disk in resumable ranges and handed to the kit's updater.

HQ's status answer names the bundle (version, architecture, sha256, size). The agent fetches it a
range at a time (``Range: bytes=a-b``, each answer 206 with exactly that range) into
``<data_dir>/updates/partial/``, appending and fsyncing each range, so a cut connection or a power
cut costs at most one range: the next session carries on from the partial file's length. Nothing is
held in memory beyond one piece. When it is whole and its sha256 matches, it is renamed into
``<data_dir>/updates/incoming/<name>.fkb`` (the updater only ever sees complete files) and announced
on ``update/event/incoming``. HQ's word is not trusted beyond that: the updater verifies the signature.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from kit import topics
from kit.files import write_durably
from sync.client import HQClient, SyncError
from sync.fleet_status import machine

log = logging.getLogger("fieldkit.sync.bundle")
VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,39}$")
SHA_RE = re.compile(r"^[0-9a-f]{64}$")
MAX_BUNDLE = 4 * 1024**3
RANGE_BYTES = 4 * 1024 * 1024  # one request: small enough that a cut loses little, big enough to be quick
SPARE_BYTES = 64 * 1024 * 1024  # never fill the data partition to the last byte for a download
Progress = Callable[[int, int], None]


class Offer:
    """HQ's offer, checked: hostile until every field is what it should be."""

    def __init__(self, raw: dict, kit: str) -> None:
        version, arch, sha, size = raw.get("version"), raw.get("arch"), raw.get("sha256"), raw.get("size")
        if not isinstance(version, str) or not VERSION_RE.match(version):
            raise SyncError("HQ offered a bundle with an unreadable version")
        if arch != machine():
            raise SyncError(f"HQ offered a bundle for {str(arch)[:20]!r}; this kit is {machine()}")
        if not isinstance(sha, str) or not SHA_RE.match(sha):
            raise SyncError("HQ offered a bundle without a usable sha256")
        if type(size) is not int or not 0 < size <= MAX_BUNDLE:
            raise SyncError("HQ offered a bundle of an impossible size")
        self.version, self.arch, self.sha256, self.size = version, arch, sha, size
        # The path is ours, not HQ's: a kit fetches only from its own bundle route.
        self.path = f"/api/v1/kits/{kit}/bundles/{version}/{arch}"
        self.name = f"fieldkit-{version}-{arch}"


def updates_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "updates"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _announced(base: Path) -> set[str]:
    try:
        done = json.loads((base / "downloaded.json").read_text())
        return {s for s in done if isinstance(s, str)} if isinstance(done, list) else set()
    except (OSError, ValueError):
        return set()


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(
    client: HQClient,
    raw_offer: dict,
    kit: str,
    data_dir: Path,
    bus=None,
    progress: Progress | None = None,
    stop: Callable[[], bool] | None = None,
    range_bytes: int | None = None,
) -> dict | None:
    """Download the offered bundle (or carry on with it); returns what was announced, None if nothing new."""
    offer = Offer(raw_offer, kit)
    range_bytes = range_bytes or RANGE_BYTES
    base = updates_dir(data_dir)
    partial, incoming = base / "partial", base / "incoming"
    for folder in (partial, incoming):
        folder.mkdir(parents=True, exist_ok=True)
    if offer.sha256 in _announced(base):
        return None  # handed to the updater before (applied, or refused there): not again
    part, meta = partial / f"{offer.name}.part", partial / f"{offer.name}.json"
    try:
        same = json.loads(meta.read_text()) == {"sha256": offer.sha256, "size": offer.size}
    except (OSError, ValueError):
        same = False
    if not same or (part.exists() and part.stat().st_size > offer.size):
        part.unlink(missing_ok=True)  # another build under the same name: start again
        write_durably(meta, json.dumps({"sha256": offer.sha256, "size": offer.size}))
    done = part.stat().st_size if part.exists() else 0
    if shutil.disk_usage(partial).free < offer.size - done + SPARE_BYTES:
        raise SyncError(
            f"not enough space for update {offer.version} ({offer.size // 2**20} MB): free some on the "
            "data partition, or bring the bundle on a USB stick"
        )
    if done:
        log.info("event=bundle_resume version=%s from=%d size=%d", offer.version, done, offer.size)
    with open(part, "ab") as out:
        while done < offer.size:
            if stop and stop():
                raise SyncError("stopped during the update download; the next session carries on")
            last = min(offer.size, done + range_bytes) - 1
            got, total = client.fetch_range(offer.path, done, last, out.write)
            if total != offer.size:
                raise SyncError(
                    f"HQ's bundle {offer.version} is {total} bytes, not the {offer.size} it offered"
                )
            out.flush()
            os.fsync(out.fileno())  # what is on disk survives a power cut; the next session resumes from it
            done += got
            if progress:
                progress(done, offer.size)
    if _hash_file(part) != offer.sha256:
        part.unlink(missing_ok=True)
        raise SyncError(
            f"update {offer.version} arrived damaged (sha256 differs); it is downloaded again next time"
        )
    target = incoming / f"{offer.name}.fkb"
    os.replace(part, target)
    _fsync_dir(incoming)
    meta.unlink(missing_ok=True)
    write_durably(base / "downloaded.json", json.dumps(sorted(_announced(base) | {offer.sha256})))
    announcement = {"path": str(target), "version": offer.version}
    if bus is not None:
        bus.publish(topics.event(kit, "update", "incoming"), announcement, qos=1)
    log.info("event=bundle_downloaded version=%s size=%d path=%s", offer.version, offer.size, target)
    return announcement
