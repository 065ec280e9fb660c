"""The core's own tables: the ledger, reference documents, sign-in throttling, the site link."""

from kit.db import Migration, MigrationSet
from kit.ledger import CHECKPOINT_SCHEMA
from kit.ledger import SCHEMA as LEDGER_SCHEMA
from kit.privacy import SCHEMA as PRIVACY_SCHEMA

CORE = MigrationSet("kit", [
    Migration("0001_ledger", LEDGER_SCHEMA),
    Migration("0002_documents", """
        CREATE TABLE kit_documents (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            version INTEGER NOT NULL,
            source TEXT NOT NULL,
            source_version TEXT,
            filename TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            size INTEGER NOT NULL,
            path TEXT NOT NULL,
            report TEXT NOT NULL,
            imported_at TEXT NOT NULL,
            UNIQUE (kind, version)
        );
    """),
    Migration("0003_auth", """
        CREATE TABLE kit_auth_failures (client TEXT NOT NULL, at REAL NOT NULL);
        CREATE INDEX kit_auth_failures_client ON kit_auth_failures(client, at);
    """),
    # The site link (kit/sitelink.py): what this kit has published and holds of each peer, per feature.
    Migration("0004_site_link", """
        CREATE TABLE site_peer_cursor (
            feature TEXT NOT NULL,
            origin_kit TEXT NOT NULL,
            highest_seq INTEGER NOT NULL,     -- highest seq applied with no gap before it
            last_seen REAL NOT NULL,
            PRIMARY KEY (feature, origin_kit)
        );
        CREATE TABLE site_peer_pending (      -- peer events above the cursor, kept until the gap before them fills
            feature TEXT NOT NULL,
            origin_kit TEXT NOT NULL,
            seq INTEGER NOT NULL,
            prev_seq INTEGER NOT NULL,
            PRIMARY KEY (feature, origin_kit, seq)
        );
        CREATE INDEX site_peer_pending_prev ON site_peer_pending(feature, origin_kit, prev_seq);
        CREATE TABLE site_outbox (
            feature TEXT PRIMARY KEY,
            published_seq INTEGER NOT NULL
        );
    """),
    # The kit-wide ceiling counts the last minute's wrong PINs from every address, including those an
    # address "cleared" by then signing in (else a known door PIN would reset the ceiling for lead guesses).
    Migration("0005_auth_kit_ceiling", """
        ALTER TABLE kit_auth_failures ADD COLUMN cleared INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX kit_auth_failures_at ON kit_auth_failures(at);
    """),
    # The kiosk's terminal (kit/web/kiosk.py): the browser on the kit's own screen, known by a device cookie
    # (only its hash is kept); signed in until a lead or the screen signs it out, not until idle.
    Migration("0006_kiosk_terminals", """
        CREATE TABLE kit_kiosk_terminals (
            id INTEGER PRIMARY KEY,
            token_hash TEXT NOT NULL UNIQUE,
            role TEXT,                        -- NULL until a PIN is entered on the screen
            csrf TEXT,                        -- the forms' token, kept so an open page outlives its cookie
            created_at REAL NOT NULL,
            signed_in_at REAL,
            last_seen REAL NOT NULL,
            signed_out_at REAL,                -- the last sign-out (by a lead or on the screen)
            signed_out_by TEXT
        );
    """),
    # Personal records (kit/personal.py): what must reach HQ but never the ledger (an e-mail a guest
    # gave with their consent). Uploaded by the sync agent; uploaded_at says HQ holds the record.
    Migration("0007_personal_outbox", """
        CREATE TABLE kit_personal_outbox (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            body TEXT NOT NULL,
            created_at REAL NOT NULL,
            uploaded_at REAL
        ) WITHOUT ROWID;
        CREATE INDEX kit_personal_outbox_pending ON kit_personal_outbox(created_at) WHERE uploaded_at IS NULL;
    """),
    # A spare kit flashed with the id of a kit the site's mirror already holds (sync/mirror.py): the
    # ledger refuses every append while this row exists, so it can never start a second chain of that id.
    Migration("0008_ledger_hold", """
        CREATE TABLE kit_ledger_hold (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            reason TEXT NOT NULL,
            set_at REAL NOT NULL
        );
    """),
    # Ledger truncation (kit/ledger.py): events HQ holds may go, a checkpoint keeps the chain verifiable.
    Migration("0009_ledger_checkpoint", CHECKPOINT_SCHEMA),
    # Personal-data erasures (kit/privacy.py): when, what and how many; the automatic one runs once per event.
    Migration("0010_privacy_erasures", PRIVACY_SCHEMA),
    # A hold that lapses by itself (``until``): a fresh kit of a site with a hub waits to hear whether the
    # hub's mirror already holds its id, but never longer than that if the hub does not answer.
    Migration("0011_ledger_hold_until", "ALTER TABLE kit_ledger_hold ADD COLUMN until REAL;"),
])
