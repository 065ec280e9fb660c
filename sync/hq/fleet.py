"""The fleet view at HQ: each kit's live state as it last reported it, beside what HQ holds from it.

With every sync the agent posts a small status (``POST /api/v1/kits/<kit>/status``): its version and
architecture, battery, backlog, mirror, clock and open incidents. It comes from the network, so it is
checked field by field and refused whole with a reason when anything is off (HQ keeps the previous
one). HQ keeps only the newest per kit. The last update outcome is not taken from the status: it is
the newest ``update.*`` event the kit uploaded (the kit's update ledger event), so it is evidence.
"""

from __future__ import annotations

import json
import logging
import math
import re
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sync.hq import schema

log = logging.getLogger("fieldkit.hq.fleet")

VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,39}$")
ARCH_RE = re.compile(r"^[a-z0-9_]{1,16}$")
MIRROR_RE = re.compile(r"^[a-z0-9_ -]{1,40}$")
MAX_STATUS_BYTES = 4096
MAX_COUNT = 2**62
UPDATE_TYPES = ("update.outcome", "update.applied", "update.rolled_back", "update.refused")
FIELDS = {
    "version",
    "arch",
    "battery_percent",
    "backlog",
    "lag_seconds",
    "mirror",
    "clock_trusted",
    "clock_time",
    "open_incidents",
}


class StatusRefused(ValueError):
    pass


def _count(body: dict, name: str, nullable: bool = False) -> int | None:
    value = body.get(name)
    if value is None and nullable:
        return None
    if type(value) is not int or not 0 <= value <= MAX_COUNT:
        raise StatusRefused(f"'{name}' must be a whole number from 0{' or null' if nullable else ''}")
    return value


def validate_status(body: object, now: datetime) -> dict:
    """A posted status as a row for hq_kit_status, or StatusRefused saying what is wrong with it."""
    if not isinstance(body, dict):
        raise StatusRefused("send the status as a JSON object")
    unknown = set(body) - FIELDS
    if unknown:
        raise StatusRefused(f"unknown field {sorted(unknown)[0][:40]!r}")
    version, arch = body.get("version"), body.get("arch")
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise StatusRefused("'version' must be a version like 0.3.0 (letters, digits, . + _ -)")
    if not isinstance(arch, str) or not ARCH_RE.match(arch):
        raise StatusRefused("'arch' must be an architecture like aarch64")
    battery = body.get("battery_percent")
    if battery is not None:
        if type(battery) not in (int, float) or not math.isfinite(battery) or not 0 <= battery <= 100:
            raise StatusRefused("'battery_percent' must be a number from 0 to 100, or null")
        battery = float(battery)
    mirror = body.get("mirror")
    if mirror is not None and (not isinstance(mirror, str) or not MIRROR_RE.match(mirror)):
        raise StatusRefused("'mirror' must be a short word (e.g. 'ok', 'stale') or null")
    trusted = body.get("clock_trusted")
    if type(trusted) is not bool:
        raise StatusRefused("'clock_trusted' must be true or false")
    offset = None
    clock_time = body.get("clock_time")
    if clock_time is not None:
        if (
            type(clock_time) not in (int, float)
            or not math.isfinite(clock_time)
            or not 0 <= clock_time < 2**40
        ):
            raise StatusRefused("'clock_time' must be the kit's clock in unix seconds")
        offset = round(float(clock_time) - now.timestamp(), 1)
    lag = _count(body, "lag_seconds", nullable=True)
    incidents = _count(body, "open_incidents", nullable=True)
    return {
        "received_at": now,
        "version": version,
        "arch": arch,
        "battery_percent": battery,
        "backlog": _count(body, "backlog"),
        "lag_seconds": None if lag is None else min(lag, 2**31 - 1),
        "mirror": mirror,
        "clock_trusted": trusted,
        "clock_offset_seconds": offset,
        "open_incidents": None if incidents is None else min(incidents, 2**31 - 1),
    }


def parse_status(data: bytes, now: datetime) -> dict:
    if len(data) > MAX_STATUS_BYTES:
        raise StatusRefused(f"the status is larger than {MAX_STATUS_BYTES} bytes")
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        raise StatusRefused("the status is not JSON") from None
    return validate_status(body, now)


def store_status(engine: Engine, kit: str, row: dict) -> None:
    """Keep the newest status per kit (one upsert; several HQ processes may race, the later wins)."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(schema.kit_status).values(kit=kit, **row)
    stmt = stmt.on_conflict_do_update(index_elements=["kit"], set_={k: stmt.excluded[k] for k in row})
    with engine.begin() as conn:
        conn.execute(stmt)


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def describe_outcome(payload: dict, type_: str) -> str:
    """An update ledger event in a few words: 'rolled back 0.2.0 -> 0.3.0: services did not start'."""
    outcome = payload.get("outcome") or payload.get("result") or type_.split(".", 1)[1]
    old = payload.get("from_version") or payload.get("from")
    new = payload.get("to_version") or payload.get("to") or payload.get("version")
    text = str(outcome).replace("_", " ")
    if old or new:
        text += f" {old or '?'} -> {new or '?'}"
    reason = payload.get("reason")
    if reason:
        text += f": {reason}"
    return text[:200]


def last_outcomes(conn, kits: list[str]) -> dict[str, dict]:
    """Per kit, its newest update event (one indexed look-up per kit: there are few of these events)."""
    e = schema.events
    out = {}
    for kit in kits:
        row = conn.execute(
            sa.select(e.c.type, e.c.payload, e.c.event_time)
            .where(e.c.kit == kit, e.c.type.in_(UPDATE_TYPES))
            .order_by(e.c.seq.desc())
            .limit(1)
        ).first()
        if row is None:
            continue
        try:
            payload = json.loads(row.payload)
        except ValueError:
            payload = {}
        payload = payload if isinstance(payload, dict) else {}
        out[kit] = {
            "type": row.type,
            "text": describe_outcome(payload, row.type),
            "outcome": str(payload.get("outcome") or payload.get("result") or row.type)[:40],
            "at": _aware(row.event_time).isoformat(timespec="seconds"),
        }
    return out


def fleet(engine: Engine, site: str | None = None, now: datetime | None = None) -> list[dict]:
    """Every kit with its site, version, last seen, last update outcome, backlog and lag, battery, clock."""
    from sync.hq import integrity

    now = now or datetime.now(UTC)
    k, s = schema.kits, schema.kit_status
    query = (
        sa.select(k.c.kit, k.c.site, k.c.disabled, s)
        .select_from(k.outerjoin(s, s.c.kit == k.c.kit))
        .order_by(k.c.site, k.c.kit)
    )
    if site:
        query = query.where(k.c.site == site)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
        outcomes = last_outcomes(conn, [r["kit"] for r in rows])
        marks = {r["kit"]: integrity.stored_mark(conn, r["kit"]) for r in rows}
    out = []
    for r in rows:
        seen = _aware(r["received_at"])
        out.append(
            {
                "kit": r["kit"],
                "site": r["site"],
                "disabled": bool(r["disabled"]),
                "version": r["version"],
                "arch": r["arch"],
                "last_seen": seen.isoformat(timespec="seconds") if seen else None,
                "seen_seconds_ago": int((now - seen).total_seconds()) if seen else None,
                "update": outcomes.get(r["kit"]),
                "backlog": r["backlog"],
                "lag_seconds": r["lag_seconds"],
                "hq_mark": marks[r["kit"]],
                "battery_percent": r["battery_percent"],
                "clock_trusted": r["clock_trusted"],
                "clock_offset_seconds": r["clock_offset_seconds"],
                "mirror": r["mirror"],
                "open_incidents": r["open_incidents"],
            }
        )
    return out


def ago(seconds: int | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{max(0, seconds)} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def clock_text(row: dict) -> str:
    if row["clock_trusted"] is None:
        return "?"
    text = "trusted" if row["clock_trusted"] else "NOT TRUSTED"
    offset = row["clock_offset_seconds"]
    if offset is not None and abs(offset) >= 5:
        text += f" ({offset:+.0f} s)"
    return text
