"""The pos feature's tables.

Three families: reference tables rebuilt by importers (products, pickup orders), projections of
the ledger (everything `fieldkit ledger rebuild` recreates, listed in PROJECTION_TABLES) and the
print queue, which is operational state: rebuilding must never reprint a day of receipts.

Every index is a page a sale's commit writes to the WAL: tables keyed by their primary key are
WITHOUT ROWID (one b-tree, not two), and nothing is indexed that no query needs.
"""

from kit.db import Migration, MigrationSet

INITIAL = """
CREATE TABLE pos_products (
    sku TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    variant TEXT NOT NULL DEFAULT '',
    price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
    currency TEXT NOT NULL,
    tax_bp INTEGER NOT NULL DEFAULT 0,
    barcode TEXT,
    stock INTEGER,
    active INTEGER NOT NULL DEFAULT 1,
    position INTEGER NOT NULL DEFAULT 0,
    edited_by TEXT
);
CREATE UNIQUE INDEX pos_products_barcode ON pos_products(barcode) WHERE barcode IS NOT NULL AND barcode != '';

CREATE TABLE pos_pickup_orders (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    items TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT ''
);

CREATE TABLE pos_counters (
    prefix TEXT PRIMARY KEY,
    last_n INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE pos_shifts (
    id TEXT PRIMARY KEY,
    number INTEGER NOT NULL UNIQUE,
    opened_at TEXT NOT NULL,
    opened_by TEXT NOT NULL,
    float_cents INTEGER NOT NULL,
    auto_opened INTEGER NOT NULL DEFAULT 0,
    closed_at TEXT,
    closed_by TEXT,
    counted_cents INTEGER,
    counted_detail TEXT,
    expected_cash_cents INTEGER,
    difference_cents INTEGER,
    z_report TEXT
);
CREATE UNIQUE INDEX pos_shifts_one_open ON pos_shifts(closed_at IS NULL) WHERE closed_at IS NULL;

CREATE TABLE pos_sales (
    id TEXT PRIMARY KEY,
    receipt TEXT NOT NULL UNIQUE,
    n INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('sale', 'refund', 'void')),
    original_id TEXT REFERENCES pos_sales(id),
    shift_id TEXT NOT NULL REFERENCES pos_shifts(id),
    at TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    request_hash TEXT,
    currency TEXT NOT NULL,
    subtotal_cents INTEGER NOT NULL,
    discount_cents INTEGER NOT NULL,
    tax_cents INTEGER NOT NULL,
    total_cents INTEGER NOT NULL,
    change_cents INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    by_role TEXT NOT NULL DEFAULT '',
    oversold TEXT NOT NULL DEFAULT '',
    seq INTEGER NOT NULL  -- the ledger event holding the whole document (events.payload)
);
CREATE INDEX pos_sales_shift ON pos_sales(shift_id, kind);
CREATE INDEX pos_sales_original ON pos_sales(original_id) WHERE original_id IS NOT NULL;

CREATE TABLE pos_sale_lines (
    sale_id TEXT NOT NULL REFERENCES pos_sales(id),
    line_no INTEGER NOT NULL,
    original_line_no INTEGER,
    sku TEXT NOT NULL,
    name TEXT NOT NULL,
    variant TEXT NOT NULL DEFAULT '',
    qty INTEGER NOT NULL,
    unit_cents INTEGER NOT NULL,
    tax_bp INTEGER NOT NULL,
    discount_cents INTEGER NOT NULL,
    total_cents INTEGER NOT NULL,
    tax_cents INTEGER NOT NULL,
    PRIMARY KEY (sale_id, line_no)
) WITHOUT ROWID;

CREATE TABLE pos_payments (
    sale_id TEXT NOT NULL REFERENCES pos_sales(id),
    idx INTEGER NOT NULL,
    method TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    tendered_cents INTEGER NOT NULL,
    reference TEXT NOT NULL DEFAULT '',
    last4 TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (sale_id, idx)
) WITHOUT ROWID;

CREATE TABLE pos_stock_sold (
    sku TEXT PRIMARY KEY,
    sold INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE pos_cash_moves (
    id TEXT PRIMARY KEY,
    shift_id TEXT NOT NULL REFERENCES pos_shifts(id),
    at TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    reason TEXT NOT NULL,
    by_role TEXT NOT NULL DEFAULT ''
);

CREATE TABLE pos_pickups_collected (
    code TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    by_role TEXT NOT NULL DEFAULT '',
    items TEXT NOT NULL
);

CREATE TABLE pos_print_jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_key TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    receipt TEXT,
    document TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    printed_at TEXT,
    bytes INTEGER
);
CREATE INDEX pos_print_jobs_queued ON pos_print_jobs(status, id);
CREATE INDEX pos_print_jobs_receipt ON pos_print_jobs(receipt) WHERE receipt IS NOT NULL;
"""

# The queue's depth is read on every sale response and every printer check: a partial index holds only
# waiting jobs, so counting them costs what is waiting, and printed jobs leave it. The second index
# finds printed jobs past pos.print_retention_hours for the service's pruning, oldest first.
PRINT_QUEUE_INDEXES = """
DROP INDEX IF EXISTS pos_print_jobs_queued;
CREATE INDEX pos_print_jobs_waiting ON pos_print_jobs(id) WHERE status = 'queued';
CREATE INDEX pos_print_jobs_printed ON pos_print_jobs(printed_at) WHERE status = 'done';
"""

# Timed pickups: a window (unix seconds, NULL = any time) per order, and which window openings were
# announced on the bus (cue triggers), so a restart does not announce one twice.
PICKUP_WINDOWS = """
ALTER TABLE pos_pickup_orders ADD COLUMN pickup_from REAL;
ALTER TABLE pos_pickup_orders ADD COLUMN pickup_until REAL;
CREATE TABLE pos_pickup_windows_announced (
    opens_at INTEGER PRIMARY KEY,
    announced_at REAL NOT NULL
);
"""

# Live drops (pos/drops.py): this kit's drop events and its peers', one row each. Not a projection
# table: `fieldkit ledger rebuild` re-adds this kit's own rows and keeps what the peers sent.
DROPS = """
CREATE TABLE pos_drop_events (
    event_id TEXT PRIMARY KEY,
    origin_kit TEXT NOT NULL,
    type TEXT NOT NULL,
    drop_id TEXT NOT NULL,
    sku TEXT,
    price_cents INTEGER,
    quantity INTEGER,
    qty INTEGER,
    starts_at REAL,
    ends_at REAL,
    at REAL,
    name TEXT,
    hlc INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX pos_drop_events_drop ON pos_drop_events(drop_id, type);
CREATE TABLE pos_drop_moments (
    drop_id TEXT NOT NULL,
    moment TEXT NOT NULL,
    announced_at REAL NOT NULL,
    PRIMARY KEY (drop_id, moment)
) WITHOUT ROWID;
"""

# Members-first drops (pos/drop_members.py): the members' window and types on a drop's start, and each
# ticket's unlock (by ticket_ref, a hash the check-in feature gives; never the code or the person).
DROP_MEMBERS = """
ALTER TABLE pos_drop_events ADD COLUMN members_until REAL;
ALTER TABLE pos_drop_events ADD COLUMN member_types TEXT;
ALTER TABLE pos_drop_events ADD COLUMN ticket_ref TEXT;
ALTER TABLE pos_drop_events ADD COLUMN ticket_type TEXT;
ALTER TABLE pos_drop_events ADD COLUMN unlock_id TEXT;
CREATE INDEX pos_drop_events_unlock ON pos_drop_events(unlock_id) WHERE unlock_id IS NOT NULL;
CREATE INDEX pos_drop_events_window ON pos_drop_events(type, ends_at);
"""

MIGRATIONS = MigrationSet("pos", [Migration("0001_initial", INITIAL), Migration("0002_print_queue_indexes", PRINT_QUEUE_INDEXES),
                                  Migration("0003_pickup_windows", PICKUP_WINDOWS), Migration("0004_drops", DROPS),
                                  Migration("0005_drop_members", DROP_MEMBERS)])

# Child tables first so emptying them never trips a foreign key.
PROJECTION_TABLES = [
    "pos_payments", "pos_sale_lines", "pos_cash_moves", "pos_sales", "pos_shifts",
    "pos_stock_sold", "pos_counters", "pos_pickups_collected",
]
