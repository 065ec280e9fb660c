"""The integrity of every kit at once, for the report and `hq kits list` over a fleet.

``integrity.kit_integrity`` asks four questions per kit, each its own round of queries, and recomputes
the chain in Python: fine for a few kits, 4,000 queries and a second pass over every event for a
thousand. Here each question is one query over all the kits (window functions, on SQLite and
PostgreSQL alike), and on PostgreSQL the chain itself is recomputed by the database: the same
SHA-256 over the same fields (kit/ledger.py ``_chain_hash``), every event against the one before it.
The answers are the same as ``kit_integrity``'s (tests/sync/test_hq_integrity.py runs both).
"""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from kit.ledger import GENESIS
from sync.hq import integrity
from sync.hq.integrity import MAX_RANGES, ChainState

EDITED = "its hash does not match its contents and the event before (edited, replaced or an event lost)"
TWICE = "stored twice with different ids (the kit's ledger was replaced?)"

_HOLES = """
WITH s AS (SELECT kit, seq FROM hq_events WHERE kit IN :kits UNION SELECT kit, seq FROM hq_refused WHERE kit IN :kits),
p AS (SELECT kit, seq, lead(seq) OVER (PARTITION BY kit ORDER BY seq) AS nxt FROM s)
SELECT kit, seq, nxt FROM p WHERE nxt > seq + 1 ORDER BY kit, seq
"""
_FIRST = (
    "SELECT kit, min(seq) FROM (SELECT kit, seq FROM hq_events WHERE kit IN :kits UNION ALL "
    "SELECT kit, seq FROM hq_refused WHERE kit IN :kits) s GROUP BY kit"
)
_EVENTS = "SELECT kit, count(*), max(seq) FROM hq_events WHERE kit IN :kits GROUP BY kit"
_REFUSED = "SELECT kit, count(*), max(seq) FROM hq_refused WHERE kit IN :kits GROUP BY kit"

# Each event's hash recomputed from its fields and its predecessor's stored hash (or the refused
# record's, when the kit parked the one before; GENESIS for seq 1). A seq stored twice: the first by
# id counts, the others are breaks, as in integrity.verify_chain.
_PG_CHAIN = f"""
WITH e AS (
  SELECT kit, seq, id, type, payload, hlc, wall_time, clock_synced, hash,
         row_number() OVER (PARTITION BY kit, seq ORDER BY id) AS n
  FROM hq_events WHERE kit IN :kits
), f AS (
  SELECT e.*, lag(seq) OVER w AS pseq, lag(hash) OVER w AS phash FROM e WHERE n = 1 WINDOW w AS (PARTITION BY kit ORDER BY seq)
), c AS (
  SELECT f.kit, f.seq, f.hash,
         CASE WHEN f.seq = 1 THEN '{GENESIS}' WHEN f.pseq = f.seq - 1 THEN f.phash ELSE r.hash END AS prev,
         f.id, f.type, f.payload, f.hlc, f.wall_time, f.clock_synced
  FROM f LEFT JOIN hq_refused r ON r.kit = f.kit AND r.seq = f.seq - 1
), v AS (
  SELECT kit, seq, prev IS NULL OR prev = '' AS unlinked,
         prev IS NOT NULL AND prev <> '' AND encode(sha256(convert_to(concat_ws(chr(31), prev, seq::text, id, kit, type,
             payload, hlc::text, wall_time, (clock_synced::int)::text), 'UTF8')), 'hex') <> hash AS broken
  FROM c
)
SELECT kit, 'sum' AS what, count(*) FILTER (WHERE unlinked) AS a, count(*) FILTER (WHERE broken) AS b, count(*) AS c
  FROM v GROUP BY kit
UNION ALL
SELECT kit, 'twice', seq, 0, 0 FROM e WHERE n > 1
UNION ALL
SELECT kit, 'break', seq, 0, 0 FROM v WHERE broken
"""


def _q(conn, sql: str, kits: list[str]):
    return conn.execute(sa.text(sql).bindparams(sa.bindparam("kits", expanding=True)), {"kits": kits})


def chains(engine: Engine, kits: list[str], max_breaks: int = 20) -> dict[str, ChainState]:
    """Each kit's chain recomputed over what HQ holds: by PostgreSQL in one query, else in Python per kit."""
    if engine.dialect.name != "postgresql":
        return {kit: integrity.verify_chain(engine, kit, max_breaks) for kit in kits}
    out = {kit: ChainState() for kit in kits}
    twice: dict[str, list[int]] = defaultdict(list)
    broken: dict[str, list[int]] = defaultdict(list)
    with engine.connect() as conn:
        for kit, what, a, b, c in _q(conn, _PG_CHAIN, kits):
            if what == "sum":
                state = out[kit]
                state.events += c
                state.unlinked, state.linked = a, c - a - b
            elif what == "twice":
                twice[kit].append(a)
                out[kit].events += 1
            else:
                broken[kit].append(a)
    for kit, state in out.items():
        found = [(s, TWICE) for s in twice.get(kit, [])] + [(s, EDITED) for s in broken.get(kit, [])]
        state.breaks = sorted(found)[:max_breaks]
    return out


def kits_integrity(engine: Engine, kits: list[str]) -> dict[str, dict]:
    """For every kit: what integrity.kit_integrity answers for one (events, mark, holes, refused, chain)."""
    if not kits:
        return {}
    with engine.connect() as conn:
        events = {k: (int(n), int(m or 0)) for k, n, m in _q(conn, _EVENTS, kits)}
        refused = {k: (int(n), int(m or 0)) for k, n, m in _q(conn, _REFUSED, kits)}
        first = {k: int(m) for k, m in _q(conn, _FIRST, kits)}
        gaps: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for kit, seq, nxt in _q(conn, _HOLES, kits):
            gaps[kit].append((int(seq) + 1, int(nxt) - 1))
    states = chains(engine, kits)
    out = {}
    for kit in kits:
        ranges = ([(1, first[kit] - 1)] if first.get(kit, 1) > 1 else []) + gaps.get(kit, [])
        out[kit] = {
            "kit": kit,
            "events": states[kit].events,
            "hwm": max(events.get(kit, (0, 0))[1], refused.get(kit, (0, 0))[1]),
            "missing": sum(b - a + 1 for a, b in ranges),
            "missing_ranges": ranges[:MAX_RANGES],
            "refused": refused.get(kit, (0, 0))[0],
            "chain": states[kit],
        }
    return out
