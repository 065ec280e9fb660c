"""Where the kit's HQ address and token live.

The address is a per-kit setting (``sync.hq_url`` in fieldkit.toml). The token is a secret: it is kept
with the state (``<data_dir>/secrets/hq-token``, mode 0600), never in /etc. A lead who prepares the SD
card on a laptop may put it in fieldkit.toml as ``sync.hq_token`` instead; the state file wins.
"""

from __future__ import annotations

from pathlib import Path

from kit.config import Config, load_config, update_toml_file
from kit.secrets import _write_private

TOKEN_FILE = "hq-token"


class NotJoined(Exception):
    """The kit has no HQ address or token yet."""


def token_path(config: Config) -> Path:
    return config.secrets_dir / TOKEN_FILE


def hq_credentials(config: Config) -> tuple[str, str]:
    url = (config["sync.hq_url"] or "").strip()
    if not url:
        raise NotJoined("no HQ address: run `fieldkit sync join URL TOKEN` or set sync.hq_url in fieldkit.toml")
    try:
        token = token_path(config).read_text().strip()
    except FileNotFoundError:
        token = (config["sync.hq_token"] or "").strip()
    if not token:
        raise NotJoined(f"no HQ token for {url}: run `fieldkit sync join {url} TOKEN`")
    return url, token


def join(config: Config, url: str, token: str) -> Config:
    """Write the address to the lead's per-kit settings and the token to the state dir."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise NotJoined(f"HQ address {url!r} must start with https:// (or http:// on a trusted network)")
    if not token.strip():
        raise NotJoined("the token is empty")
    update_toml_file(config.paths.boot_toml, {"sync.hq_url": url})
    _write_private(token_path(config), token.strip() + "\n")
    return load_config()
