"""The lead feature's tables.

The run-sheet and the leads' adjustments are ledger events (this kit's) and, from the site's other
kits, rows of ``lead_peer_events`` (kept as received, like check-in's peer scans): the schedule is
folded from both. ``lead_fired`` remembers which slot moments were announced, so a restart does not
announce a slot's start twice. Nothing here is a projection: `fieldkit ledger rebuild` leaves it.
"""

from kit.db import Migration, MigrationSet

INITIAL = """
CREATE TABLE lead_peer_events (
    origin_kit TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    hlc INTEGER NOT NULL,
    payload TEXT NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (origin_kit, seq)
) WITHOUT ROWID;

CREATE TABLE lead_fired (
    runsheet TEXT NOT NULL,
    slot INTEGER NOT NULL,
    moment TEXT NOT NULL,
    at INTEGER NOT NULL,
    fired_at REAL NOT NULL,
    announced INTEGER NOT NULL,
    PRIMARY KEY (runsheet, slot, moment, at)
) WITHOUT ROWID;
"""

MIGRATIONS = MigrationSet("lead", [Migration("0001_initial", INITIAL)])
