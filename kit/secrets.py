"""Secrets kept with the state (never in /etc): staff PIN hashes, the session key, the lead's first PIN.

PINs are random at ``fieldkit init`` (no default credentials) and stored as scrypt hashes. The lead's
first PIN is also kept readable by root only, for the setup slip, until the lead sets their own.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from pathlib import Path

from kit.files import write_durably


def _scrypt(password: bytes, **kwargs) -> bytes:
    # hashlib has scrypt only when imported with OpenSSL; the kit's long-running processes import it with
    # Python's own hashes (kit/__main__.py), so OpenSSL is loaded here, on the first PIN to check.
    scrypt = getattr(hashlib, "scrypt", None)
    if scrypt is None:
        from _hashlib import scrypt
    return scrypt(password, **kwargs)

ROLES = ("door", "merch", "lead")
PIN_LENGTH = 6
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class SecretsError(Exception):
    pass


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.parent.chmod(0o700)  # also when something else made the folder first (mkdir's mode was ignored then)
    write_durably(path, text, mode=0o600)


def hash_pin(pin: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(pin.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_pin(pin: str, stored: str) -> bool:
    try:
        _, salt, digest = stored.split("$")
        got = _scrypt(pin.encode(), salt=bytes.fromhex(salt), dklen=32, **_SCRYPT)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


def new_pin() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(PIN_LENGTH))


class Secrets:
    def __init__(self, secrets_dir: Path):
        self.dir = Path(secrets_dir)
        self.pins_path = self.dir / "pins.json"
        self.lead_pin_path = self.dir / "lead-pin.txt"
        self.session_key_path = self.dir / "session.key"

    def exists(self) -> bool:
        return self.pins_path.exists()

    def create(self, force: bool = False) -> dict[str, str]:
        """Make one random PIN per role and a session key; returns the PINs in clear, once."""
        if self.exists() and not force:
            raise SecretsError(f"{self.pins_path} exists; use --force to replace every PIN")
        pins = {role: new_pin() for role in ROLES}
        while len(set(pins.values())) < len(ROLES):  # a PIN must tell the role apart
            pins = {role: new_pin() for role in ROLES}
        _write_private(self.pins_path, json.dumps({role: hash_pin(pin) for role, pin in pins.items()}, indent=1))
        _write_private(self.lead_pin_path, pins["lead"] + "\n")
        if force or not self.session_key_path.exists():
            _write_private(self.session_key_path, secrets.token_hex(32))
        return pins

    def _hashes(self) -> dict[str, str]:
        try:
            return json.loads(self.pins_path.read_text())
        except FileNotFoundError:
            raise SecretsError(f"{self.pins_path} is missing: run `fieldkit init` first") from None

    def role_for_pin(self, pin: str) -> str | None:
        """The role a PIN signs in as (checks every role so timing does not tell which matched)."""
        found = None
        for role, stored in self._hashes().items():
            if check_pin(pin, stored) and found is None:
                found = role
        return found

    def set_pin(self, role: str, pin: str) -> None:
        if role not in ROLES:
            raise SecretsError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        if not (pin.isdigit() and 4 <= len(pin) <= 12):
            raise SecretsError("a PIN is 4 to 12 digits")
        hashes = self._hashes()
        for other, stored in hashes.items():
            if other != role and check_pin(pin, stored):
                raise SecretsError(f"that PIN is already the {other} PIN; choose another")
        hashes[role] = hash_pin(pin)
        _write_private(self.pins_path, json.dumps(hashes, indent=1))
        if role == "lead":
            self.lead_pin_path.unlink(missing_ok=True)  # the lead has their own now: stop printing it

    def initial_lead_pin(self) -> str | None:
        try:
            return self.lead_pin_path.read_text().strip()
        except FileNotFoundError:
            return None

    def session_key(self) -> str:
        try:
            return self.session_key_path.read_text().strip()
        except FileNotFoundError:
            raise SecretsError(f"{self.session_key_path} is missing: run `fieldkit init` first") from None
