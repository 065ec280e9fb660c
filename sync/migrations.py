"""The sync agent's own tables: the upload cursor per HQ, parked records, downloaded documents."""

from kit.db import Migration, MigrationSet

MIGRATIONS = MigrationSet("sync", [
    Migration("0001_agent", """
        CREATE TABLE sync_cursor (
            hq_url TEXT PRIMARY KEY,
            cursor INTEGER NOT NULL DEFAULT 0,   -- every seq <= cursor is acknowledged by HQ (or parked)
            hq_hwm INTEGER,                       -- HQ's high-water mark when last asked
            updated_at TEXT NOT NULL
        );
        CREATE TABLE sync_parked (
            seq INTEGER PRIMARY KEY,
            event_id TEXT NOT NULL,
            error TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 1,
            parked_at TEXT NOT NULL
        );
        CREATE TABLE sync_documents (
            hq_id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            hq_version INTEGER NOT NULL,
            scope TEXT NOT NULL,
            filename TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            path TEXT NOT NULL,
            received_at TEXT NOT NULL,
            applied INTEGER NOT NULL DEFAULT 0,
            local_version INTEGER,
            result TEXT NOT NULL DEFAULT ''
        );
        CREATE TABLE sync_status (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
    """),
    # The site mirror (sync/mirror.py): the highest seq each mirror kit acknowledged holding of this kit.
    Migration("0002_mirror", """
        CREATE TABLE sync_mirror_cursor (
            mirror TEXT PRIMARY KEY,
            upto INTEGER NOT NULL,      -- every seq <= upto is on that mirror, its chain checked
            hq_upto INTEGER NOT NULL DEFAULT 0,  -- every seq <= hq_upto HQ holds, relayed by that mirror
            acked_at REAL NOT NULL
        );
    """),
])
