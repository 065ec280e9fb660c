"""HQ's tables, as SQLAlchemy Core metadata: the same schema on SQLite and PostgreSQL.

Events are keyed by the id the kit made, so a batch sent twice (a lost answer, a proxy cutting the
connection after the commit, several HQ processes behind a load balancer) is stored once.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

kits = sa.Table(
    "hq_kits", metadata,
    sa.Column("kit", sa.String(32), primary_key=True),
    sa.Column("site", sa.String(32), nullable=False),
    # sha256 of a 256-bit random token: a fast hash is enough for a secret nobody can guess.
    sa.Column("token_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
)

events = sa.Table(
    "hq_events", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("kit", sa.String(32), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("hlc", sa.BigInteger, nullable=False),
    sa.Column("wall_time", sa.String(40), nullable=False),
    sa.Column("clock_synced", sa.Boolean, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    # When it happened as far as HQ can vouch: the kit's wall time, never later than HQ received it.
    sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("time_trusted", sa.Boolean, nullable=False),
    sa.Index("hq_events_kit_seq", "kit", "seq"),
    sa.Index("hq_events_type", "type"),
)

documents = sa.Table(
    "hq_documents", metadata,
    sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("scope", sa.String(8), nullable=False),  # all | site | kit
    sa.Column("scope_value", sa.String(32), nullable=False),  # "" for all
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("filename", sa.String(200), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("kind", "scope", "scope_value", "version", name="hq_documents_version"),
)

settlements = sa.Table(
    "hq_settlements", metadata,
    sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("batch", sa.String(200), nullable=False),  # the imported file's name
    sa.Column("line", sa.Integer, nullable=False),
    sa.Column("reference", sa.String(100), nullable=False),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("terminal", sa.String(100), nullable=False),
    sa.UniqueConstraint("batch", "line", name="hq_settlements_line"),
)

admins = sa.Table(
    "hq_admins", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# Records HQ refused on purpose (the kit parked them): not holes, and their hash still links the chain.
refused = sa.Table(
    "hq_refused", metadata,
    sa.Column("kit", sa.String(32), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("hash", sa.String(64), nullable=False),  # "" when the record's hash was unusable
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("refused_at", sa.DateTime(timezone=True), nullable=False),
)

# Bad-token requests per client address, shared by every HQ process over the database.
auth_failures = sa.Table(
    "hq_auth_failures", metadata,
    sa.Column("address", sa.String(64), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("last_failure", sa.DateTime(timezone=True), nullable=False, index=True),
)


# Personal records a kit collected with consent (kit/personal.py: an e-mail for the organiser's list):
# never in the ledger, uploaded on their own endpoint, keyed by the id the kit made (idempotent).
personal_records = sa.Table(
    "hq_personal_records", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("kit", sa.String(32), nullable=False, index=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
)

# Retention of personal data per site (sync/hq/retention.py): a date, or days after each record arrived.
privacy_retention = sa.Table(
    "hq_privacy_retention", metadata,
    sa.Column("site", sa.String(32), primary_key=True),
    sa.Column("erase_after", sa.DateTime(timezone=True), nullable=True),
    sa.Column("keep_days", sa.Float, nullable=True),
    sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
)

# Each erasure of personal records at HQ: which site, when, how many; never the data.
privacy_erasures = sa.Table(
    "hq_privacy_erasures", metadata,
    sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("site", sa.String(32), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("records", sa.Integer, nullable=False),
    sa.Column("forced", sa.Boolean, nullable=False),
)

# The fleet view (sync/hq/fleet.py): each kit's live state as it last reported it, one row per kit.
kit_status = sa.Table(
    "hq_kit_status", metadata,
    sa.Column("kit", sa.String(32), primary_key=True),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("version", sa.String(40), nullable=False),
    sa.Column("arch", sa.String(16), nullable=False),
    sa.Column("battery_percent", sa.Float, nullable=True),
    sa.Column("backlog", sa.BigInteger, nullable=False),
    sa.Column("lag_seconds", sa.Integer, nullable=True),  # age of the oldest event HQ had not acknowledged
    sa.Column("mirror", sa.String(40), nullable=True),
    sa.Column("clock_trusted", sa.Boolean, nullable=False),
    sa.Column("clock_offset_seconds", sa.Float, nullable=True),  # kit clock minus HQ's when it reported
    sa.Column("open_incidents", sa.Integer, nullable=True),
)

# Release bundles (sync/hq/bundles.py): the files live in HQ's data dir, these rows only describe them.
bundles = sa.Table(
    "hq_bundles", metadata,
    sa.Column("version", sa.String(40), primary_key=True),
    sa.Column("arch", sa.String(16), primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("filename", sa.String(120), nullable=False),  # under the bundle dir
    sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
)

# A staged rollout: a version offered to the kits of one site at a time, until stopped.
rollouts = sa.Table(
    "hq_rollouts", metadata,
    sa.Column("version", sa.String(40), primary_key=True),
    sa.Column("site", sa.String(32), primary_key=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
)


# The report's facts (sync/hq/facts.py): payload fields of the types a night has by the hundred thousand,
# taken out once at ingest so the report adds them up in the database. Few indexes: the report's sums
# scan a whole table anyway (hash joins, top-N sorts), and every index is paid for by each batch HQ
# stores: the primary keys only. ``at_ms``: HQ's event_time in ms;
# ``metric_at``: kit/metrics.event_time (the payload's own time where it has one), in seconds.
sale_facts = sa.Table(
    "hq_sale_facts", metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("kit", sa.String(32), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Column("metric_at", sa.Float, nullable=False),
    sa.Column("is_refund", sa.Boolean, nullable=False),  # type pos.refund (else pos.sale)
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("sign", sa.SmallInteger, nullable=False),
    sa.Column("sale_id", sa.String(64), nullable=False),
    sa.Column("original_id", sa.String(64), nullable=False),
    sa.Column("receipt", sa.String(64), nullable=False),
    sa.Column("shift_id", sa.String(64), nullable=False),
    sa.Column("total_cents", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(8), nullable=False),
)

line_facts = sa.Table(
    "hq_line_facts", metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("kit", sa.String(32), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Column("sign", sa.SmallInteger, nullable=False),
    sa.Column("receipt", sa.String(64), nullable=False),
    sa.Column("sku", sa.String(64), nullable=False),  # "" for a line without one (counted in items only)
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("qty", sa.BigInteger, nullable=False),
    sa.Column("total_cents", sa.BigInteger, nullable=False),
    sa.Column("unit_cents", sa.BigInteger, nullable=False),
    sa.Column("discount_cents", sa.BigInteger, nullable=False),
    sa.Column("moves_stock", sa.Boolean, nullable=False),
)

payment_facts = sa.Table(
    "hq_payment_facts", metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),
    sa.Column("kit", sa.String(32), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Column("sign", sa.SmallInteger, nullable=False),
    sa.Column("receipt", sa.String(64), nullable=False),
    sa.Column("shift_id", sa.String(64), nullable=False),
    sa.Column("method", sa.String(32), nullable=False),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.Column("reference", sa.String(100), nullable=False),
)

scan_facts = sa.Table(
    "hq_scan_facts", metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("kit", sa.String(32), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Column("metric_at", sa.Float, nullable=False),
    sa.Column("ticket_key", sa.String(128), nullable=False),
    sa.Column("person", sa.String(160), nullable=False),  # the ticket, or kit:time for a scan without one
    sa.Column("admitted", sa.Boolean, nullable=False),
    sa.Column("first_entry", sa.Boolean, nullable=False),  # admitted on verdict admit, not rehearsal, a ticket
    sa.Column("verdict", sa.String(32), nullable=False),
    sa.Column("rehearsal", sa.Boolean, nullable=False),
    sa.Column("door", sa.String(64), nullable=False),
    sa.Column("order_code", sa.String(40), nullable=False),
    sa.Column("method", sa.String(16), nullable=False),
)

# A checkin.undone names the scan it undoes (on the same kit); kept apart so the order they arrive in
# (a hole filled later) does not matter.
undo_facts = sa.Table(
    "hq_undo_facts", metadata,
    sa.Column("kit", sa.String(32), primary_key=True),
    sa.Column("scan_event_id", sa.String(64), primary_key=True),
)

# Markers of one-off work on a store (facts: the facts of the events stored before them are filled).
meta = sa.Table(
    "hq_meta", metadata,
    sa.Column("key", sa.String(32), primary_key=True),
    sa.Column("value", sa.String(64), nullable=False),
)
