"""HQ storage over SQLAlchemy Core: kits and their tokens, idempotent event ingest, high-water marks.

Everything here runs on SQLite (one organiser) and on PostgreSQL (several HQ processes behind a load
balancer). ``INSERT ... ON CONFLICT (id) DO NOTHING``, which both support, is what keeps a batch sent
twice, or sent to two HQ processes at once, stored once. A batch goes in as one round per dialect
(``_insert_batch``: executemany on SQLite, COPY into a temporary table on PostgreSQL); the row-by-row
path through SQLAlchemy is kept for a batch the database refuses, so only the bad rows are refused.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sync.hq import facts, integrity, schema, validate
from sync.hq.batch import COLUMNS, _insert_batch  # noqa: F401  (COLUMNS: benchmarks name the columns by it)

log = logging.getLogger("fieldkit.hq.store")

KIT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
CLOCK_TOLERANCE = validate.CLOCK_TOLERANCE
DEFAULT_MAX_LEAD = 5000  # one batch of the largest size HQ takes (hq.max_records)
validate_record = validate.validate_record


class HQError(Exception):
    """A request HQ refuses as a whole; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400, code: str = "bad_request", headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.headers = status, code, headers or {}


def normalise_url(url: str) -> str:
    """Accept the URLs people paste (postgres://, postgresql://) and pick psycopg 3 for them."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")  # a batch HQ acknowledged survives a power cut
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _begin_immediate(conn) -> None:
            # Take the write lock at BEGIN so two writers queue instead of failing on lock upgrade.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def create_schema(engine: Engine) -> None:
    from sync.hq import relay  # noqa: F401  (its tables are on schema.metadata)

    schema.metadata.create_all(engine)
    facts.ensure(engine)  # a store from before the report's facts: filled once


def now_utc() -> datetime:
    return datetime.now(UTC)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything HQ stores is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


# --- kits ----------------------------------------------------------------------------------------

def add_kit(engine: Engine, kit: str, site: str, replace: bool = False) -> str:
    """Register a kit (or give it a new token with ``replace``); returns the token, shown once."""
    if not KIT_ID_RE.match(kit) or not KIT_ID_RE.match(site):
        raise HQError("kit and site ids may only use letters, digits, - and _ (at most 32)")
    token = f"fk_{kit}_{secrets.token_urlsafe(32)}"
    with engine.begin() as conn:
        existing = conn.execute(sa.select(schema.kits.c.kit).where(schema.kits.c.kit == kit)).first()
        if existing and not replace:
            raise HQError(f"kit {kit!r} is already registered; use --replace to issue a new token", 409, "exists")
        values = {"site": site, "token_hash": hash_token(token), "disabled": False}
        if existing:
            conn.execute(schema.kits.update().where(schema.kits.c.kit == kit).values(**values))
        else:
            conn.execute(schema.kits.insert().values(kit=kit, created_at=now_utc(), **values))
    log.info("event=kit_registered kit=%s site=%s replaced=%s", kit, site, bool(existing))
    return token


def set_kit_disabled(engine: Engine, kit: str, disabled: bool = True) -> None:
    """A lost or stolen kit: its token stops working at once (what it uploaded before stays)."""
    with engine.begin() as conn:
        done = conn.execute(schema.kits.update().where(schema.kits.c.kit == kit).values(disabled=disabled)).rowcount
    if not done:
        raise HQError(f"no kit {kit!r} is registered", 404, "not_found")
    log.info("event=kit_disabled kit=%s disabled=%s", kit, disabled)


def list_kits(engine: Engine) -> list[dict]:
    hwm = (sa.select(schema.events.c.kit, sa.func.max(schema.events.c.seq).label("hwm"),
                     sa.func.count().label("events"), sa.func.max(schema.events.c.received_at).label("last_received"))
           .group_by(schema.events.c.kit).subquery())
    query = (sa.select(schema.kits.c.kit, schema.kits.c.site, schema.kits.c.created_at, schema.kits.c.disabled,
                       hwm.c.hwm, hwm.c.events,
                       hwm.c.last_received)
             .select_from(schema.kits.outerjoin(hwm, hwm.c.kit == schema.kits.c.kit)).order_by(schema.kits.c.kit))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def authenticate_kit(engine: Engine, kit: str, token: str, conn=None) -> dict:
    """The kit's row if ``token`` is its token; HQError 401/403 otherwise (never says which part was wrong).

    ``conn``: a connection the request already holds (one checkout instead of two)."""
    if conn is None:
        with engine.connect() as own:
            row = own.execute(sa.select(schema.kits).where(schema.kits.c.kit == kit)).first()
    else:
        row = conn.execute(sa.select(schema.kits).where(schema.kits.c.kit == kit)).first()
    expected = row.token_hash if row else hash_token(secrets.token_hex(16))
    if not token or not hmac.compare_digest(hash_token(token), expected) or row is None:
        raise HQError("unknown kit or wrong token", 401, "unauthorized")
    if row.disabled:
        raise HQError(f"kit {kit} is disabled at HQ", 403, "disabled")
    return dict(row._mapping)


def high_water_mark(engine: Engine, kit: str) -> int:
    """The highest seq HQ has answered for (stored, or refused on purpose and parked by the kit)."""
    with engine.connect() as conn:
        return integrity.stored_mark(conn, kit)


# --- events --------------------------------------------------------------------------------------

@dataclass
class RecordResult:
    id: str | None
    seq: int | None
    status: str  # stored | duplicate | refused
    error: str = ""

    def as_dict(self) -> dict:
        d = {"id": self.id, "seq": self.seq, "status": self.status}
        if self.error:
            d["error"] = self.error
        return d


def _insert_ignoring_duplicates(engine: Engine):
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(schema.events).on_conflict_do_nothing(index_elements=["id"]).returning(schema.events.c.id)


def _remember_refusals(conn, kit: str, refusals: list[tuple[int, str, str]], at: datetime) -> None:
    """Seqs refused on purpose (the kit parks them) are not holes; keep the newest reason per seq."""
    if not refusals:
        return
    if conn.engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    rows = {seq: {"kit": kit, "seq": seq, "hash": digest, "reason": reason[:500], "refused_at": at}
            for seq, digest, reason in refusals}
    stmt = insert(schema.refused)
    stmt = stmt.on_conflict_do_update(index_elements=["kit", "seq"], set_={
        "hash": stmt.excluded.hash, "reason": stmt.excluded.reason, "refused_at": stmt.excluded.refused_at})
    conn.execute(stmt, list(rows.values()))


def _check_links(engine: Engine, kit: str, rows: list[dict]) -> None:
    """The chain check as events arrive; after the commit, so a surprise in it never loses a stored batch."""
    try:
        with engine.connect() as conn:
            integrity.check_new_links(conn, kit, rows)
    except Exception:
        log.exception("event=chain_check_failed kit=%s rows=%d", kit, len(rows))


def _insert_rows(engine: Engine, kit: str, rows: list[dict], results: dict[str, RecordResult],
                 conn=None) -> set[str]:
    """Insert the whole batch at once; if the database refuses it, row by row so only the bad rows are refused.

    ``conn``: the request's connection, to store and check the batch on (fewer round trips than a
    connection per step); the row-by-row path takes its own.
    """
    driver = engine.dialect.dbapi  # _insert_batch talks to the driver itself: its errors come unwrapped
    try:
        if conn is None:
            with engine.begin() as own:
                stored = _insert_batch(own, rows)
            _check_links(engine, kit, [r for r in rows if r["id"] in stored])
        else:
            with conn.begin():
                stored = _insert_batch(conn, rows)
            _check_links_on(conn, kit, [r for r in rows if r["id"] in stored])
        return stored
    except (sa.exc.OperationalError, driver.OperationalError):
        raise  # the database is down or locked: the whole batch is answered 5xx and sent again
    except (sa.exc.DBAPIError, driver.Error) as e:
        log.warning("event=batch_insert_refused kit=%s rows=%d reason=%r action=row_by_row", kit, len(rows),
                    str(getattr(e, "orig", None) or e)[:200])
    stored = set()
    for row in rows:
        try:
            with engine.begin() as own:
                got = {r[0] for r in own.execute(_insert_ignoring_duplicates(engine),
                                                 [{k: v for k, v in row.items() if k != "_payload"}])}
                if got:
                    facts.store_for(own, [row], new=False)
                stored |= got
        except sa.exc.OperationalError:
            raise
        except sa.exc.DBAPIError as e:
            reason = f"the database refused this record: {str(e.orig).splitlines()[0][:200]}"
            results[row["id"]].status, results[row["id"]].error = "refused", reason
            log.warning("event=record_refused kit=%s seq=%s reason=%r", kit, row["seq"], reason)
    _check_links(engine, kit, [r for r in rows if r["id"] in stored])
    return stored


def _check_links_on(conn, kit: str, rows: list[dict]) -> None:
    """The chain check on the request's connection, after the commit (see _check_links); the read it
    starts stays open for the new mark (ingest_batch commits it)."""
    try:
        integrity.check_new_links(conn, kit, rows)
    except Exception:
        log.exception("event=chain_check_failed kit=%s rows=%d", kit, len(rows))
        conn.rollback()


def ingest(engine: Engine, kit: str, records: Iterable[object], received_at: datetime | None = None,
           max_lead: int = DEFAULT_MAX_LEAD) -> list[RecordResult]:
    """Store a batch idempotently; one result per record, in order (see ingest_batch)."""
    return ingest_batch(engine, kit, records, received_at, max_lead)[0]


def ingest_batch(engine: Engine, kit: str, records: Iterable[object], received_at: datetime | None = None,
                 max_lead: int = DEFAULT_MAX_LEAD) -> tuple[list[RecordResult], int]:
    """Store a batch idempotently; one result per record, in order, and the kit's mark afterwards.

    A kit sends its ledger contiguously from its cursor, so a seq more than ``max_lead`` plus the batch's
    own length beyond what HQ has answered for is refused: it would raise the mark and hide real holes.
    The mark, the insert, the chain check and the new mark share one connection.
    """
    received_at = received_at or now_utc()
    records = list(records)
    with engine.connect() as conn:
        limit = integrity.stored_mark(conn, kit) + max_lead + len(records)
        conn.commit()
        results, rows, pending, refusals = _validated(records, kit, received_at, limit)
        stored = _insert_rows(engine, kit, rows, pending, conn) if rows else set()
        for row in rows:
            if pending[row["id"]].status == "refused":
                refusals.append((row["seq"], row["hash"], pending[row["id"]].error))
        if refusals:
            conn.commit()  # the chain check's read
            with conn.begin():
                _remember_refusals(conn, kit, refusals, received_at)
        mark = integrity.stored_mark(conn, kit)
        conn.commit()
    for r in pending.values():
        if r.status == "pending":
            r.status = "stored" if r.id in stored else "duplicate"
    log.info("event=batch_ingested kit=%s records=%d stored=%d refused=%d", kit, len(results), len(stored),
             sum(r.status == "refused" for r in results))
    return results, mark


def _validated(records: list, kit: str, received_at: datetime, limit: int):
    """Check every record in Python before the batch goes in (one bad row would abort a whole COPY)."""
    results: list[RecordResult] = []
    rows: list[dict] = []
    pending: dict[str, RecordResult] = {}
    refusals: list[tuple[int, str, str]] = []
    for record in records:
        try:
            row = validate.validate_record(record, kit, received_at)
            if row["seq"] > limit:
                raise ValueError(f"seq {row['seq']} is too far ahead of what HQ holds from this kit (it accepts "
                                 f"up to {limit} now): a kit sends its ledger in order")
        except ValueError as e:
            rid, rseq = validate.record_id(record), validate.record_seq(record)
            results.append(RecordResult(rid, rseq, "refused", str(e)))
            log.warning("event=record_refused kit=%s seq=%s id=%s reason=%r", kit, rseq, rid, str(e))
            if rseq is not None and rseq <= limit:
                digest = record.get("hash") if isinstance(record, dict) else None
                ok_hash = isinstance(digest, str) and validate.HASH_RE.match(digest)
                refusals.append((rseq, digest if ok_hash else "", str(e)))
            continue
        rid, rseq = row["id"], row["seq"]  # what record_id and record_seq give for a valid record
        row["_payload"] = record["payload"]  # parsed already: the report's facts read it (sync/hq/facts.py)
        if rid in pending:
            results.append(RecordResult(rid, rseq, "duplicate"))
            continue
        rows.append(row)
        pending[row["id"]] = RecordResult(rid, rseq, "pending")
        results.append(pending[row["id"]])
    return results, rows, pending, refusals


def count_events(engine: Engine, kit: str | None = None) -> int:
    query = sa.select(sa.func.count()).select_from(schema.events)
    if kit:
        query = query.where(schema.events.c.kit == kit)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


# --- admins (organisers reading reports) -------------------------------------------------------

def add_admin(engine: Engine, name: str) -> str:
    token = f"fkadm_{secrets.token_urlsafe(32)}"
    with engine.begin() as conn:
        conn.execute(schema.admins.delete().where(schema.admins.c.name == name))
        conn.execute(schema.admins.insert().values(name=name, token_hash=hash_token(token), created_at=now_utc()))
    return token


def authenticate_admin(engine: Engine, token: str) -> str | None:
    if not token:
        return None
    wanted = hash_token(token)
    with engine.connect() as conn:
        for row in conn.execute(sa.select(schema.admins)):
            if hmac.compare_digest(row.token_hash, wanted):
                return row.name
    return None
