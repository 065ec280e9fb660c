"""The checkin feature's tables.

Reference data (rebuilt by importers, left alone by ``ledger rebuild``): keys, tickets, revocations,
ticket types, peer events (the site link in kit/ keeps the cursors). Projections of this kit's ledger (emptied and replayed by
``ledger rebuild``): scans and the door state.
"""

from checkin.counts import METHOD_TRIGGERS, recount, recount_methods
from checkin.counts import TABLES as COUNT_TABLES
from checkin.counts import TRIGGERS as COUNT_TRIGGERS
from kit.db import Migration, MigrationSet, _split_sql

SCHEMA = """
CREATE TABLE checkin_keys (
    id INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,               -- pretix | kit | rehearsal
    public_pem TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    added_at REAL NOT NULL
);
CREATE TABLE checkin_tickets (
    id INTEGER PRIMARY KEY,
    ticket_key TEXT NOT NULL UNIQUE,  -- what the QR code holds (or a stable id for code-less rows)
    order_code TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL DEFAULT '',
    last_name TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    ticket_type TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'valid',  -- valid | revoked | blocked
    attention INTEGER NOT NULL DEFAULT 0,
    valid_from REAL,
    valid_until REAL,
    comment TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '',
    row_hash TEXT NOT NULL DEFAULT ''
);
CREATE INDEX checkin_tickets_order ON checkin_tickets(order_code COLLATE NOCASE);
CREATE INDEX checkin_tickets_email ON checkin_tickets(email COLLATE NOCASE);
CREATE INDEX checkin_tickets_last ON checkin_tickets(last_name, name);
CREATE VIRTUAL TABLE checkin_tickets_fts USING fts5(
    name, email, order_code, content='checkin_tickets', content_rowid='id',
    tokenize="unicode61 remove_diacritics 2", prefix='2 3 4 5 6'
);
CREATE TABLE checkin_revocations (
    secret TEXT PRIMARY KEY,
    status TEXT NOT NULL               -- revoked | blocked
);
CREATE TABLE checkin_ticket_types (
    item INTEGER PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE TABLE checkin_scans (
    seq INTEGER PRIMARY KEY,          -- this kit's ledger seq
    event_id TEXT NOT NULL UNIQUE,
    hlc INTEGER NOT NULL,
    at REAL NOT NULL,
    ticket_key TEXT NOT NULL,
    verdict TEXT NOT NULL,
    admitted INTEGER NOT NULL,
    attention INTEGER NOT NULL,
    rehearsal INTEGER NOT NULL,
    door TEXT NOT NULL,
    source TEXT NOT NULL,
    name TEXT NOT NULL,
    ticket_type TEXT NOT NULL,
    order_code TEXT NOT NULL,
    reason TEXT NOT NULL,
    manual_reason TEXT NOT NULL DEFAULT '',
    undone INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX checkin_scans_ticket ON checkin_scans(ticket_key);
CREATE INDEX checkin_scans_at ON checkin_scans(at);
CREATE TABLE checkin_door_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    rehearsal INTEGER NOT NULL DEFAULT 0,
    direction TEXT NOT NULL DEFAULT 'entry',
    changed_at REAL NOT NULL DEFAULT 0,
    changed_by TEXT NOT NULL DEFAULT ''
);
CREATE TABLE checkin_peer_events (
    origin_kit TEXT NOT NULL,
    origin_seq INTEGER NOT NULL,
    prev_seq INTEGER NOT NULL,
    event_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    hlc INTEGER NOT NULL,
    at REAL NOT NULL,
    ticket_key TEXT NOT NULL DEFAULT '',
    verdict TEXT NOT NULL DEFAULT '',
    admitted INTEGER NOT NULL DEFAULT 0,
    rehearsal INTEGER NOT NULL DEFAULT 0,
    door TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL DEFAULT '',
    ticket_type TEXT NOT NULL DEFAULT '',
    undo_of TEXT NOT NULL DEFAULT '',
    payload TEXT NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (origin_kit, origin_seq)
);
CREATE INDEX checkin_peer_events_ticket ON checkin_peer_events(ticket_key);
CREATE INDEX checkin_peer_events_undo ON checkin_peer_events(undo_of);
CREATE TABLE checkin_peer_cursor (
    origin_kit TEXT PRIMARY KEY,
    highest_seq INTEGER NOT NULL,     -- highest seq applied with no gap before it
    last_seen REAL NOT NULL
);
CREATE TABLE checkin_site_outbox (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    published_seq INTEGER NOT NULL
);
"""


def _move_to_site_link(conn) -> None:
    """The per-peer cursors and the outbox mark move to the site link's tables (kit 0004_site_link), so an
    upgraded kit neither asks its peers for everything again nor re-sends all its check-ins."""
    conn.execute("INSERT OR IGNORE INTO site_peer_cursor (feature, origin_kit, highest_seq, last_seen)"
                 " SELECT 'checkin', origin_kit, highest_seq, last_seen FROM checkin_peer_cursor")
    conn.execute("INSERT OR IGNORE INTO site_outbox (feature, published_seq)"
                 " SELECT 'checkin', published_seq FROM checkin_site_outbox")
    # Events held above a cursor (a gap before them) wait for the gap in the link's table now.
    conn.execute("INSERT OR IGNORE INTO site_peer_pending (feature, origin_kit, seq, prev_seq)"
                 " SELECT 'checkin', p.origin_kit, p.origin_seq, p.prev_seq FROM checkin_peer_events p"
                 " LEFT JOIN checkin_peer_cursor c ON c.origin_kit = p.origin_kit"
                 " WHERE p.origin_seq > COALESCE(c.highest_seq, 0)")
    conn.execute("DROP TABLE checkin_peer_cursor")
    conn.execute("DROP TABLE checkin_site_outbox")


def _door_fallbacks(conn) -> None:
    """Reissue, accumulating revocations, the second check and consent (issue 15).

    Tickets gain the identifiers a second check compares and the import's consent columns; a
    revocation remembers where it came from and why (a door's says "reissued at 20:14 at Door 1");
    a scan records how the guest got in (scan, second_check, lead_override), counted per method.
    """
    for column in ("phone", "postcode", "birth_date", "consent"):
        conn.execute(f"ALTER TABLE checkin_tickets ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")
    for column, decl in (("origin", "TEXT NOT NULL DEFAULT 'file'"), ("reason", "TEXT NOT NULL DEFAULT ''"),
                         ("door", "TEXT NOT NULL DEFAULT ''"), ("at", "REAL NOT NULL DEFAULT 0"),
                         ("reissued", "INTEGER NOT NULL DEFAULT 0"), ("event_id", "TEXT NOT NULL DEFAULT ''")):
        conn.execute(f"ALTER TABLE checkin_revocations ADD COLUMN {column} {decl}")
    conn.execute("ALTER TABLE checkin_scans ADD COLUMN method TEXT NOT NULL DEFAULT 'scan'")
    # Before methods were recorded a hand admission carried its reason: it counts as the lead's override.
    conn.execute("UPDATE checkin_scans SET method = 'lead_override' WHERE manual_reason != ''")
    conn.execute("ALTER TABLE checkin_peer_events ADD COLUMN method TEXT NOT NULL DEFAULT ''")
    conn.execute("UPDATE checkin_peer_events SET method = CASE WHEN COALESCE(json_extract(payload, '$.manual_reason'),"
                 " '') != '' THEN 'lead_override' ELSE 'scan' END WHERE type = 'checkin.scanned'")
    for statement in _split_sql(METHOD_TRIGGERS):
        conn.execute(statement)
    recount_methods(conn)


MIGRATIONS = MigrationSet("checkin", [Migration("0001_checkin", SCHEMA),
                                      Migration("0002_site_link", _move_to_site_link),
                                      Migration("0003_counts", COUNT_TABLES + COUNT_TRIGGERS),
                                      Migration("0004_counts_filled", recount),
                                      Migration("0005_door_fallbacks", _door_fallbacks)])

PROJECTION_TABLES = ["checkin_scans", "checkin_door_state"]
