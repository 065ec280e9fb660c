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

# The site's incident log (lead/incidents.py): this kit's incidents and its peers', kept as they arrive.
# ``note`` columns hold what a person wrote (personal data): a privacy rule blanks them, nothing else.
INCIDENTS = """
CREATE TABLE lead_incidents (
    id TEXT PRIMARY KEY,
    origin_kit TEXT NOT NULL,
    category TEXT NOT NULL,
    severity TEXT NOT NULL,
    note TEXT NOT NULL,
    concerns TEXT NOT NULL DEFAULT '',
    auto TEXT NOT NULL DEFAULT '',
    logged_by TEXT NOT NULL,
    logged_at REAL NOT NULL,
    hlc INTEGER NOT NULL
);
CREATE INDEX lead_incidents_auto ON lead_incidents(origin_kit, auto) WHERE auto != '';

CREATE TABLE lead_incident_actions (
    event_id TEXT PRIMARY KEY,
    incident TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('acknowledged', 'resolved')),
    kit TEXT NOT NULL,
    by TEXT NOT NULL,
    at REAL NOT NULL,
    hlc INTEGER NOT NULL,
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX lead_incident_actions_incident ON lead_incident_actions(incident);
"""

MIGRATIONS = MigrationSet("lead", [Migration("0001_initial", INITIAL), Migration("0002_incidents", INCIDENTS)])
