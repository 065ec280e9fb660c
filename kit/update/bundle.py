"""Release bundles: the one file a kit is updated from, and how a kit decides to trust it.

Contract (shared with the sync agent and HQ, who import this module and nothing else of kit/update):

- A bundle is an uncompressed POSIX tar file, name ``fieldkit-<version>-<arch>.fkb``. Members:
  ``manifest.json`` (first), ``manifest.sig`` (Ed25519 signature over the exact bytes of
  ``manifest.json``, 64 raw bytes), ``wheels/*.whl``, ``systemd/*`` (unit files) and ``installer/*``
  (installer pieces). Only regular files, no directories, no links, no ``..`` or absolute names.
- ``manifest.json``: ``{"format": 1, "name": "fieldkit", "version", "arch" (aarch64|x86_64),
  "python": ["3.11", "3.13"], "min_from_version", "migrations": {set: [names]},
  "dependencies_included": bool, "created", "key_id", "members": {name: {"sha256", "size"}}}``.
  Every member but the manifest and its signature is listed with its sha256, and nothing unlisted is
  accepted.
- ``verify(path, public_keys) -> Manifest`` checks the signature against the *given* keys only (a kit's
  ``update.trusted_keys``, never a key inside a bundle), then every member's size and hash; it raises
  ``BundleError`` whose message a lead can read ("signed by a key this kit does not trust", ...).
  ``read_manifest(path)`` reads the manifest without trusting it (to show "0.3.0 for aarch64" early).
- A bundle downloaded by the sync agent is written whole (temp file + rename) into
  ``<data_dir>/updates/incoming/<name>.fkb`` and announced on ``topics.UPDATE_INCOMING``
  (``fieldkit/<kit>/update/event/incoming``, payload ``{"path", "version", "sha256"}``); the kit then
  treats it exactly like a bundle found on a USB stick.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

FORMAT = 1
ARCHES = ("aarch64", "x86_64")
MANIFEST, SIGNATURE = "manifest.json", "manifest.sig"
MEMBER_RE = re.compile(r"^(wheels|systemd|installer)/[A-Za-z0-9][A-Za-z0-9._+@-]{0,200}$")
VERSION_RE = re.compile(r"^\d{1,6}(\.\d{1,6}){0,3}$")
MAX_MANIFEST_BYTES = 1 << 20
MAX_MEMBERS = 2000
CHUNK = 1 << 20


class BundleError(Exception):
    """The bundle cannot be used; the message says why in words a lead understands."""


def parse_version(text: str) -> tuple[int, ...]:
    if not isinstance(text, str) or not VERSION_RE.match(text):
        raise BundleError(f"version {text!r:.40} is not a release number like 0.3.0")
    return tuple(int(p) for p in text.split("."))


@dataclass(frozen=True)
class Manifest:
    version: str
    arch: str
    min_from_version: str
    migrations: dict[str, list[str]]
    members: dict[str, dict]
    dependencies_included: bool = True
    python: list[str] = field(default_factory=lambda: ["3.11", "3.13"])
    created: str = ""
    key_id: str = ""

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise BundleError("its manifest is not readable (damaged bundle)") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("name") != "fieldkit":
            raise BundleError("it is not a Field Kit release bundle (unknown manifest format)")
        version, arch, oldest = data.get("version"), data.get("arch"), data.get("min_from_version")
        parse_version(version)
        parse_version(oldest)
        if arch not in ARCHES:
            raise BundleError(
                f"its architecture {arch!r:.20} is unknown (expected one of {', '.join(ARCHES)})"
            )
        members = data.get("members")
        if not isinstance(members, dict) or len(members) > MAX_MEMBERS:
            raise BundleError("its manifest lists no members (damaged bundle)")
        for name, info in members.items():
            ok = (
                isinstance(name, str)
                and MEMBER_RE.match(name)
                and isinstance(info, dict)
                and isinstance(info.get("sha256"), str)
                and re.fullmatch(r"[0-9a-f]{64}", info["sha256"])
                and isinstance(info.get("size"), int)
                and info["size"] >= 0
            )
            if not ok:
                raise BundleError(f"its manifest has a bad entry {str(name)[:60]!r}")
        migrations = data.get("migrations", {})
        if not isinstance(migrations, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(n, str) for n in v)
            for k, v in migrations.items()
        ):
            raise BundleError("its manifest's migrations are malformed")
        python = data.get("python", [])
        if not isinstance(python, list) or not all(isinstance(p, str) for p in python):
            raise BundleError("its manifest's python versions are malformed")
        return cls(
            version,
            arch,
            oldest,
            migrations,
            members,
            bool(data.get("dependencies_included", True)),
            python,
            str(data.get("created", ""))[:40],
            str(data.get("key_id", ""))[:64],
        )

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "format": FORMAT,
                "name": "fieldkit",
                "version": self.version,
                "arch": self.arch,
                "python": self.python,
                "min_from_version": self.min_from_version,
                "migrations": self.migrations,
                "dependencies_included": self.dependencies_included,
                "created": self.created,
                "key_id": self.key_id,
                "members": self.members,
            },
            indent=1,
            sort_keys=True,
        ).encode()

    @property
    def title(self) -> str:
        return f"Field Kit {self.version} ({self.arch})"

    def wheels(self) -> list[str]:
        return sorted(n for n in self.members if n.startswith("wheels/"))


def _open(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, mode="r:")
    except FileNotFoundError:
        raise BundleError(f"{path} does not exist") from None
    except (tarfile.TarError, OSError) as e:
        raise BundleError(f"it is not a complete bundle file (truncated or damaged: {e})") from None


def _check_member(info: tarfile.TarInfo) -> None:
    if not info.isreg():
        raise BundleError(f"it holds {info.name[:60]!r}, which is not a plain file (refused)")
    if info.name not in (MANIFEST, SIGNATURE) and not MEMBER_RE.match(info.name):
        raise BundleError(f"it holds an unexpected file {info.name[:60]!r} (refused)")


def _read_head(tar: tarfile.TarFile) -> tuple[bytes, bytes]:
    raw = sig = None
    for name in (MANIFEST, SIGNATURE):
        try:
            info = tar.getmember(name)
        except KeyError:
            raise BundleError(f"it has no {name} (not a release bundle, or truncated)") from None
        _check_member(info)
        if info.size > MAX_MANIFEST_BYTES:
            raise BundleError(f"its {name} is too large (refused)")
        f = tar.extractfile(info)
        data = f.read() if f else b""
        if name == MANIFEST:
            raw = data
        else:
            sig = data
    return raw, sig


def read_manifest(path: Path | str) -> Manifest:
    """The manifest, unverified: for showing what a file claims to be before it is checked."""
    try:
        with _open(Path(path)) as tar:
            raw, _sig = _read_head(tar)
    except (tarfile.TarError, OSError) as e:
        raise BundleError(f"it is not a complete bundle file (truncated or damaged: {e})") from None
    return Manifest.from_json(raw)


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def verify_signature(raw: bytes, sig: bytes, public_keys: list[bytes]) -> str:
    """The id of the trusted key that signed ``raw``; BundleError when none did."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not public_keys:
        raise BundleError(
            "this kit trusts no release key yet (set update.trusted_keys, or personalise.sh --release-key)"
        )
    for pub in public_keys:
        try:
            Ed25519PublicKey.from_public_bytes(pub).verify(sig, raw)
            return key_id(pub)
        except (InvalidSignature, ValueError):
            continue
    raise BundleError(
        "it is signed by a key this kit does not trust, or its manifest was changed after signing"
    )


def verify(path: Path | str, public_keys: list[bytes]) -> Manifest:
    """Check signature (against ``public_keys`` only) and every member's size and sha256; the trusted manifest."""
    path = Path(path)
    try:
        with _open(path) as tar:
            raw, sig = _read_head(tar)
            verify_signature(raw, sig, public_keys)
            manifest = Manifest.from_json(raw)
            seen: set[str] = set()
            for info in tar:
                if info.name in (MANIFEST, SIGNATURE):
                    continue
                _check_member(info)
                expected = manifest.members.get(info.name)
                if expected is None:
                    raise BundleError(
                        f"it holds {info.name[:60]!r}, which its manifest does not list (refused)"
                    )
                if info.name in seen:
                    raise BundleError(f"it holds {info.name[:60]!r} twice (refused)")
                seen.add(info.name)
                if info.size != expected["size"] or _sha256(tar.extractfile(info)) != expected["sha256"]:
                    raise BundleError(
                        f"{info.name} inside it was changed or damaged (checksum does not match)"
                    )
            missing = sorted(set(manifest.members) - seen)
            if missing:
                raise BundleError(
                    f"it is incomplete: {len(missing)} file(s) missing, e.g. {missing[0]} (truncated?)"
                )
    except (tarfile.TarError, OSError, EOFError) as e:
        raise BundleError(f"it is not a complete bundle file (truncated or damaged: {e})") from None
    return manifest


def _sha256(f: io.BufferedReader | None) -> str:
    h = hashlib.sha256()
    while f is not None and (chunk := f.read(CHUNK)):
        h.update(chunk)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return _sha256(f)


def extract(path: Path, manifest: Manifest, dest: Path) -> None:
    """Write the members a verified manifest lists under ``dest`` (names were checked by ``verify``)."""
    with _open(path) as tar:
        for info in tar:
            if info.name not in manifest.members:
                continue
            target = dest / info.name
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(info)
            h = hashlib.sha256()
            with target.open("wb") as out:
                while src is not None and (chunk := src.read(CHUNK)):
                    h.update(chunk)
                    out.write(chunk)
            # The file may have changed between verify and here (a USB stick): check what was written.
            if h.hexdigest() != manifest.members[info.name]["sha256"]:
                raise BundleError(f"{info.name} changed while it was being installed (refused)")


def write_bundle(out: Path, manifest: Manifest, files: dict[str, Path], sign) -> Path:
    """Write a bundle: ``files`` maps member name to local file; ``sign(bytes) -> bytes`` signs the manifest."""
    members = {}
    for name, src in sorted(files.items()):
        if not MEMBER_RE.match(name):
            raise BundleError(
                f"cannot bundle {name!r}: member names are wheels/, systemd/ or installer/ files"
            )
        members[name] = {"sha256": file_sha256(src), "size": src.stat().st_size}
    manifest = Manifest(**{**manifest.__dict__, "members": members})
    raw = manifest.to_json()
    sig = sign(raw)
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, mode="w:", format=tarfile.PAX_FORMAT) as tar:
        for name, data in ((MANIFEST, raw), (SIGNATURE, sig)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        for name, src in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode = src.stat().st_size, 0o644
            with src.open("rb") as f:
                tar.addfile(info, f)
    tmp.replace(out)
    return out
