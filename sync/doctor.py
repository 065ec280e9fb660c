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
    found = [ok("sync", f"syncing to {url}")]
    if url.startswith("http://"):
        found = [warn("sync", f"HQ {url} is plain HTTP: the token and sales cross the network unencrypted",
                      "put HQ behind a TLS reverse proxy (docs/hq.md) and join with https://")]
    parked = _parked(config)
    if parked:
        found.append(warn("sync parked", f"HQ refused {parked} record(s); they wait on the kit, parked",
                          "see `fieldkit sync status`, then `fieldkit sync now --retry-parked` once HQ is fixed"))
    return found


def _parked(config: Config) -> int:
    import sqlite3

    if not config.db_path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{config.db_path}?mode=ro", uri=True, timeout=2) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM sync_parked").fetchone()[0])
    except sqlite3.Error:  # not migrated yet, or busy: the database check says so
        return 0
