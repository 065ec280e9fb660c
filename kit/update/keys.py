"""Release keys: an Ed25519 pair made once by the organisation; kits trust only the public half."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from kit.files import write_durably
from kit.update.bundle import BundleError, key_id

PUB_PREFIX = "fieldkit-release-ed25519"


def new_key_pair(out: Path) -> tuple[Path, Path]:
    """Write ``out/release.key`` (0600, PEM) and ``out/release.pub``; never overwrite an existing key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    out.mkdir(parents=True, exist_ok=True)
    key_path, pub_path = out / "release.key", out / "release.pub"
    if key_path.exists() or pub_path.exists():
        raise BundleError(f"{key_path} already exists: a release key is made once; move it away first")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    write_durably(key_path, pem, mode=0o600)
    write_durably(pub_path, public_text(raw) + "\n", mode=0o644)
    return key_path, pub_path


def public_text(raw: bytes) -> str:
    return f"{PUB_PREFIX} {base64.b64encode(raw).decode()} {key_id(raw)}"


def parse_public(text: str) -> bytes:
    """A public key from a release.pub line or its bare base64 text."""
    parts = text.strip().split()
    if parts and parts[0] == PUB_PREFIX:
        parts = parts[1:]
    try:
        raw = base64.b64decode(parts[0], validate=True) if parts else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise BundleError(f"{text.strip()[:60]!r} is not a release public key (expected a release.pub line)")
    return raw


def load_public(path: Path) -> bytes:
    try:
        return parse_public(path.read_text())
    except OSError as e:
        raise BundleError(f"{path}: cannot read the public key ({e.strerror})") from None


def load_private(path: Path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as e:
        raise BundleError(f"{path}: cannot read the release key ({e.strerror})") from None
    except ValueError:
        raise BundleError(f"{path} is not a release key (made by `fieldkit release keys new`)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"{path} is not an Ed25519 release key")
    if os.stat(path).st_mode & 0o077:
        raise BundleError(f"{path} may be read by others: chmod 600 it (it signs what every kit installs)")
    return key


def public_raw_of(private) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def trusted_keys(config) -> list[bytes]:
    """The kit's trusted release keys (update.trusted_keys); a bad entry is refused, never skipped silently."""
    return [parse_public(text) for text in config["update.trusted_keys"]]
