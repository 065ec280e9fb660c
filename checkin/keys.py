"""Ticket signing keys: parse what pretix publishes, keep public keys in the database, make new pairs.

Door kits only ever need public keys. A private key made with ``fieldkit tickets keys new`` stays in
the kit's secrets dir (mode 0600) for ``fieldkit tickets issue`` and is never synced or logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import sqlite3
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kit.files import write_durably

PEM_RE = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.S)


class TicketKeyError(ValueError):
    """A key file or text cannot be read as an Ed25519 public key; the message says why."""


def fingerprint(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _load_pem(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as e:
        raise TicketKeyError(f"not a readable public key ({e})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise TicketKeyError(f"a {type(key).__name__} key, but pretix_sig1 needs Ed25519")
    return key


def _from_token(token: bytes) -> Ed25519PublicKey:
    """One base64 token: base64 of a PEM (what pretix's API lists) or of the 32 raw key bytes."""
    try:
        raw = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        raise TicketKeyError("not base64") from None
    if raw.startswith(b"-----BEGIN"):
        return _load_pem(raw)
    if len(raw) == 32:
        return Ed25519PublicKey.from_public_bytes(raw)
    raise TicketKeyError(f"base64 decodes to {len(raw)} bytes, neither a PEM nor a 32-byte Ed25519 key")


def parse_public_keys(data: bytes) -> list[Ed25519PublicKey]:
    """Every public key in a pretix event JSON, a PEM file, or base64 text (one key per line)."""
    text = data.strip().lstrip(b"\xef\xbb\xbf")
    if not text:
        raise TicketKeyError("the file is empty")
    if text.startswith(b"{"):
        try:
            obj = json.loads(text)
        except ValueError as e:
            raise TicketKeyError(f"not valid JSON ({e})") from None
        listed = (obj.get("valid_keys") or {}).get("pretix_sig1") if isinstance(obj, dict) else None
        if not isinstance(listed, list) or not listed:
            raise TicketKeyError("the JSON has no valid_keys.pretix_sig1 list (export the event from pretix's API)")
        return [_from_token(str(t).encode()) for t in listed]
    pems = PEM_RE.findall(text)
    if pems:
        return [_load_pem(p) for p in pems]
    tokens = [t for t in re.split(rb"[\s,]+", text) if t]
    return [_from_token(t) for t in tokens]


def add_keys(conn: sqlite3.Connection, keys: list[Ed25519PublicKey], kind: str, label: str = "") -> tuple[int, int]:
    """Store public keys; returns (added, already known). Runs inside the caller's transaction."""
    added = known = 0
    for key in keys:
        fp = fingerprint(key)
        cur = conn.execute(
            "INSERT INTO checkin_keys (fingerprint, kind, public_pem, label, added_at) VALUES (?,?,?,?,?)"
            " ON CONFLICT(fingerprint) DO NOTHING",
            (fp, kind, public_pem(key), label, time.time()),
        )
        if cur.rowcount:
            added += 1
        else:
            known += 1
    return added, known


def load_keys(conn: sqlite3.Connection, include_rehearsal: bool) -> list[tuple[str, Ed25519PublicKey, str]]:
    """(fingerprint, key, kind) of every stored key; the rehearsal key only when asked."""
    rows = conn.execute("SELECT fingerprint, public_pem, kind FROM checkin_keys ORDER BY id").fetchall()
    return [
        (r[0], serialization.load_pem_public_key(r[1].encode()), r[2])  # type: ignore[misc]
        for r in rows
        if include_rehearsal or r[2] != "rehearsal"
    ]


# --- private keys (issuing) ------------------------------------------------------------------------

def private_dir(secrets_dir: Path) -> Path:
    return Path(secrets_dir) / "ticket-keys"


def save_private_key(secrets_dir: Path, key: Ed25519PrivateKey, name: str) -> Path:
    folder = private_dir(secrets_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{name}.pem"
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return write_durably(path, pem, mode=0o600)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (ValueError, TypeError) as e:
        raise TicketKeyError(f"{path}: not a readable private key ({e})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise TicketKeyError(f"{path}: not an Ed25519 private key")
    return key


def newest_private_key(secrets_dir: Path, name_prefix: str = "") -> tuple[str, Ed25519PrivateKey] | None:
    folder = private_dir(secrets_dir)
    if not folder.exists():
        return None
    files = sorted((p for p in folder.glob(f"{name_prefix}*.pem")), key=lambda p: p.stat().st_mtime)
    files = [p for p in files if name_prefix or not p.name.startswith("rehearsal")]
    if not files:
        return None
    key = load_private_key(files[-1])
    return fingerprint(key.public_key()), key


def rehearsal_key(conn: sqlite3.Connection, secrets_dir: Path) -> Ed25519PrivateKey:
    """The kit's practice key (made on first use): it signs the rehearsal sheet's tickets only."""
    found = newest_private_key(secrets_dir, "rehearsal")
    if found:
        key = found[1]
    else:
        key = Ed25519PrivateKey.generate()
        save_private_key(secrets_dir, key, "rehearsal")
    add_keys(conn, [key.public_key()], "rehearsal", "rehearsal sheet")
    return key
