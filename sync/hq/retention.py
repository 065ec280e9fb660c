"""HQ's retention of personal data: each site (an event's kits) keeps the personal records its kits sent
(signups: sync/hq/personal.py) until its own rule says they go, then ``fieldkit hq privacy erase`` deletes
them and makes the bytes go from the database files.

A rule per site: a date (``erase_after``: everything the site's kits sent goes then), or a number of days
after each record arrived; sites without a rule use ``hq.personal_keep_days``. An erasure is recorded
(site, when, how many, forced or due), never the data. It runs from the command line (a systemd timer or
cron), not inside `hq serve`: several stateless HQ processes behind a load balancer would each run it,
and a VACUUM must not stall the threads answering kits.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sync.hq import schema
from sync.hq.store import now_utc

log = logging.getLogger("fieldkit.hq.retention")


class RetentionError(Exception):
    """A rule that cannot be kept (unknown site, both or neither of a date and days)."""


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # SQLite gives naive datetimes back
    return value


def set_rule(
    engine: Engine, site: str, *, erase_after: datetime | None = None, keep_days: float | None = None
) -> None:
    if (erase_after is None) == (keep_days is None):
        raise RetentionError("give either --erase-after DATE or --keep-days N")
    if keep_days is not None and not 0 <= keep_days <= 3650:
        raise RetentionError("--keep-days must be between 0 and 3650")
    t = schema.privacy_retention
    with engine.begin() as conn:
        if not conn.execute(sa.select(schema.kits.c.kit).where(schema.kits.c.site == site).limit(1)).first():
            raise RetentionError(f"no kit of site {site!r} is registered at this HQ")
        conn.execute(t.delete().where(t.c.site == site))
        conn.execute(
            t.insert().values(site=site, erase_after=erase_after, keep_days=keep_days, set_at=now_utc())
        )
    log.info("event=hq_retention_set site=%s erase_after=%s keep_days=%s", site, erase_after, keep_days)


def _sites(engine: Engine) -> dict[str, list[str]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(schema.kits.c.site, schema.kits.c.kit)).all()
    out: dict[str, list[str]] = {}
    for site, kit in rows:
        out.setdefault(site, []).append(kit)
    return out


def cutoff(rule: dict | None, default_days: float, now: datetime) -> datetime | None:
    """Records received before this go (None: nothing is due yet)."""
    if rule and rule["erase_after"] is not None:
        return now + timedelta(days=36500) if now >= _aware(rule["erase_after"]) else None
    days = rule["keep_days"] if rule else default_days
    return now - timedelta(days=float(days))


def status(engine: Engine, default_days: float, now: datetime | None = None) -> list[dict]:
    """Per site: personal records held, the rule, how many are due, the last erasure."""
    now = now or now_utc()
    t, r, e = schema.personal_records, schema.privacy_retention, schema.privacy_erasures
    out = []
    sites = _sites(
        engine
    )  # before the next connection: on SQLite each one holds the write lock (BEGIN IMMEDIATE)
    with engine.connect() as conn:
        rules = {row.site: dict(row._mapping) for row in conn.execute(sa.select(r))}
        for site, kits in sorted(sites.items()):
            rule = rules.get(site)
            held = (
                conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.kit.in_(kits))).scalar() or 0
            )
            before = cutoff(rule, default_days, now)
            due = (
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(t)
                    .where(t.c.kit.in_(kits), t.c.received_at < before)
                ).scalar()
                if before is not None
                else 0
            )
            last = conn.execute(sa.select(e).where(e.c.site == site).order_by(e.c.id.desc()).limit(1)).first()
            out.append(
                {
                    "site": site,
                    "held": int(held),
                    "due": int(due or 0),
                    "rule": _rule_text(rule, default_days),
                    "last_erasure": {
                        "at": _aware(last.at).isoformat(timespec="seconds"),
                        "records": last.records,
                        "forced": bool(last.forced),
                    }
                    if last
                    else None,
                }
            )
    return out


def _rule_text(rule: dict | None, default_days: float) -> str:
    if rule and rule["erase_after"] is not None:
        return f"erase after {_aware(rule['erase_after']).isoformat(timespec='minutes')}"
    if rule:
        return f"keep {rule['keep_days']:g} days after arrival"
    return f"keep {default_days:g} days after arrival (hq.personal_keep_days)"


def erase(
    engine: Engine,
    default_days: float,
    *,
    site: str | None = None,
    force: bool = False,
    now: datetime | None = None,
) -> dict[str, int]:
    """Delete the personal records that are due (``force``: every record of the site); per site, how many."""
    now = now or now_utc()
    sites = _sites(engine)
    if site is not None and site not in sites:
        raise RetentionError(f"no kit of site {site!r} is registered at this HQ")
    if force and site is None:
        raise RetentionError("--now erases one site's records: name it with --site")
    t, r, e = schema.personal_records, schema.privacy_retention, schema.privacy_erasures
    done: dict[str, int] = {}
    with engine.connect() as conn:
        rules = {row.site: dict(row._mapping) for row in conn.execute(sa.select(r))}
    for name, kits in sorted(sites.items()):
        if site is not None and name != site:
            continue
        before = now + timedelta(days=36500) if force else cutoff(rules.get(name), default_days, now)
        if before is None:
            continue
        with engine.begin() as conn:
            _secure_delete(conn)
            n = conn.execute(t.delete().where(t.c.kit.in_(kits), t.c.received_at < before)).rowcount or 0
            if n:
                conn.execute(e.insert().values(site=name, at=now, records=n, forced=force))
        if n:
            done[name] = n
            log.info("event=hq_personal_erased site=%s records=%d forced=%s", name, n, force)
    if done:
        compact(engine)
    return done


def _secure_delete(conn) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA secure_delete=ON")


def compact(engine: Engine) -> None:
    """Make deleted rows' bytes go: SQLite checkpoint + VACUUM; PostgreSQL rewrites the table (VACUUM FULL)."""
    if engine.dialect.name == "sqlite":
        raw = (
            engine.raw_connection()
        )  # outside SQLAlchemy: its BEGIN IMMEDIATE hook would wrap VACUUM in a transaction
        try:
            cur = raw.cursor()
            for statement in ("PRAGMA wal_checkpoint(TRUNCATE)", "VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)"):
                cur.execute(statement)
            cur.close()
        finally:
            raw.close()
    elif engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"VACUUM FULL {schema.personal_records.name}")
