"""Release bundles at HQ: stored as files, offered site by site in a staged rollout, served with Range.

HQ never looks inside a bundle and never vouches for it: it keeps the file, its size and sha256 (so a
kit can tell a cut or damaged download), and offers it only to the kits of a site in an active
rollout. The kit verifies the bundle's signature against its own trusted keys before applying it.
Files live in ``<hq data dir>/bundles/`` (``hq.bundle_dir``), not in the database: a bundle is tens
of MB and is read in ranges by many kits at once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sync.hq import schema
from sync.hq.fleet import ARCH_RE, VERSION_RE
from sync.hq.store import KIT_ID_RE, HQError

log = logging.getLogger("fieldkit.hq.bundles")
CHUNK = 64 * 1024
RANGE_RE = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$")


def _now() -> datetime:
    return datetime.now(UTC)


def _check(version: str, arch: str) -> None:
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise HQError(
            f"version {str(version)[:40]!r} must look like 0.3.0 (letters, digits, . + _ -)",
            400,
            "bad_version",
        )
    if not isinstance(arch, str) or not ARCH_RE.match(arch):
        raise HQError(f"architecture {str(arch)[:40]!r} must look like aarch64 or x86_64", 400, "bad_arch")


def version_key(version: str) -> tuple:
    """0.10.0 after 0.9.1; a non-numeric part sorts by text, after the numbers."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.+_-]", version))


def add_bundle(engine: Engine, bundle_dir: Path, source: Path, version: str, arch: str) -> dict:
    """Copy ``source`` into the bundle dir (streamed, hashed on the way, renamed into place) and record it."""
    _check(version, arch)
    bundle_dir = Path(bundle_dir)
    bundle_dir.mkdir(parents=True, exist_ok=True)
    name = f"fieldkit-{version}-{arch}.fkb"
    digest, size = hashlib.sha256(), 0
    fd, tmp = tempfile.mkstemp(dir=bundle_dir, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            while chunk := src.read(1024 * 1024):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size == 0:
            raise HQError(f"{source} is empty", 400, "empty")
        os.replace(tmp, bundle_dir / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(bundle_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    row = {
        "version": version,
        "arch": arch,
        "sha256": digest.hexdigest(),
        "size": size,
        "filename": name,
        "added_at": _now(),
    }
    b = schema.bundles
    with engine.begin() as conn:
        conn.execute(b.delete().where(b.c.version == version, b.c.arch == arch))
        conn.execute(b.insert().values(**row))
    log.info("event=bundle_added version=%s arch=%s size=%d sha256=%s", version, arch, size, row["sha256"])
    return row


def list_bundles(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(
                sa.select(schema.bundles).order_by(schema.bundles.c.added_at, schema.bundles.c.arch)
            )
        ]


def start_rollout(engine: Engine, version: str, site: str) -> None:
    """Offer ``version`` to the kits of ``site`` (again, if it was stopped)."""
    if not KIT_ID_RE.match(site or ""):
        raise HQError("a site id may only use letters, digits, - and _")
    r = schema.rollouts
    with engine.begin() as conn:
        if not conn.execute(
            sa.select(schema.bundles.c.arch).where(schema.bundles.c.version == version)
        ).first():
            raise HQError(
                f"no bundle of version {version!r}: add one with `fieldkit hq bundles add`", 404, "not_found"
            )
        conn.execute(r.delete().where(r.c.version == version, r.c.site == site))
        conn.execute(r.insert().values(version=version, site=site, started_at=_now(), stopped_at=None))
    log.info("event=rollout_started version=%s site=%s", version, site)


def stop_rollout(engine: Engine, version: str, site: str | None = None) -> int:
    """Stop offering ``version`` (to every site, or one); kits that have it keep it. Returns sites stopped."""
    r = schema.rollouts
    query = r.update().where(r.c.version == version, r.c.stopped_at.is_(None))
    if site:
        query = query.where(r.c.site == site)
    with engine.begin() as conn:
        n = conn.execute(query.values(stopped_at=_now())).rowcount
    log.info("event=rollout_stopped version=%s site=%s sites=%d", version, site or "*", n)
    return n


def list_rollouts(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(sa.select(schema.rollouts).order_by(schema.rollouts.c.started_at))
        ]


def offered(engine: Engine, site: str, arch: str | None, version: str | None = None) -> list[dict]:
    """Bundles in an active rollout for ``site`` (and ``arch``), newest version first."""
    b, r = schema.bundles, schema.rollouts
    query = (
        sa.select(b)
        .select_from(b.join(r, r.c.version == b.c.version))
        .where(r.c.site == site, r.c.stopped_at.is_(None))
    )
    if arch is not None:
        query = query.where(b.c.arch == arch)
    if version is not None:
        query = query.where(b.c.version == version)
    with engine.connect() as conn:
        rows = [dict(x._mapping) for x in conn.execute(query)]
    return sorted(rows, key=lambda x: version_key(x["version"]), reverse=True)


def offer_for(engine: Engine, kit: str, site: str, arch: str, running: str) -> dict | None:
    """What the status answer tells a kit: the newest offered bundle newer than the one it runs."""
    for row in offered(engine, site, arch):
        if version_key(row["version"]) > version_key(running):
            return {
                "version": row["version"],
                "arch": row["arch"],
                "sha256": row["sha256"],
                "size": row["size"],
                "path": f"/api/v1/kits/{kit}/bundles/{row['version']}/{row['arch']}",
            }
    return None


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``Range: bytes=a-b`` as (first, last) inclusive; None for no header; HQError 416 for one HQ cannot serve."""
    if header is None:
        return None
    m = RANGE_RE.match(header.strip())
    bad = HQError(
        f"the range {header[:60]!r} is not one satisfiable byte range of this {size}-byte file",
        416,
        "bad_range",
        headers={"Content-Range": f"bytes */{size}"},
    )
    if not m or (not m.group(1) and not m.group(2)):
        raise bad
    if not m.group(1):  # the last n bytes
        n = int(m.group(2))
        if n == 0:
            raise bad
        return max(0, size - n), size - 1
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) else size - 1
    if first >= size or last < first:
        raise bad
    return first, min(last, size - 1)


def stream(path: Path, first: int, last: int) -> Iterator[bytes]:
    """The bytes first..last of a file, a chunk at a time (a bundle is never held in memory)."""
    with open(path, "rb") as f:
        f.seek(first)
        left = last - first + 1
        while left > 0:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                return  # the file shrank under us (replaced): the kit sees a short body and retries
            left -= len(chunk)
            yield chunk


def bundle_path(bundle_dir: Path, row: dict) -> Path:
    path = Path(bundle_dir) / row["filename"]
    if not path.is_file() or path.stat().st_size != row["size"]:
        raise HQError(
            f"bundle {row['version']} ({row['arch']}) is missing from HQ's bundle folder", 503, "missing"
        )
    return path
