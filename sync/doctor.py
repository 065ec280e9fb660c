"""`fieldkit doctor` checks of the sync agent (no network: a doctor run must be quick offline)."""

from __future__ import annotations

from kit.config import Config
from kit.doctor import Check, ok, warn
from sync.credentials import NotJoined, hq_credentials


def checks(config: Config) -> list[Check]:
    try:
        url, _ = hq_credentials(config)
    except NotJoined as e:
        return [warn("sync", f"not syncing to an HQ: {e}", "fieldkit sync join https://hq.example.org TOKEN")]
    if url.startswith("http://"):
        return [warn("sync", f"HQ {url} is plain HTTP: the token and sales cross the network unencrypted",
                     "put HQ behind a TLS reverse proxy (docs/hq.md) and join with https://")]
    return [ok("sync", f"syncing to {url}")]
