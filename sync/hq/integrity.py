"""What HQ holds from each kit, checked: holes below the mark, and the kit's SHA-256 hash chain.

A kit's ledger is gapless (seq 1, 2, 3, ...) and each event's hash covers the event before it
(kit/ledger.py). So HQ can tell a kit exactly which seqs it lacks (a restore from an old backup, a row
deleted by hand), and it can tell an edited or replaced event from a good one. Seqs HQ refused on
purpose are remembered in ``hq_refused``: the kit parked them, so they are not holes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kit.ledger import GENESIS, _chain_hash
from sync.hq import schema

log = logging.getLogger("fieldkit.hq.integrity")

MAX_RANGES = 1000  # ranges in one answer; the kit restores these, the rest next session


def stored_mark(conn: Connection, kit: str) -> int:
    """The highest seq HQ has answered for: stored, or refused on purpose (0: nothing yet)."""
    ev = sa.select(sa.func.max(schema.events.c.seq)).where(schema.events.c.kit == kit).scalar_subquery()
    rf = sa.select(sa.func.max(schema.refused.c.seq)).where(schema.refused.c.kit == kit).scalar_subquery()
    row = conn.execute(sa.select(ev, rf)).one()
    return max(int(row[0] or 0), int(row[1] or 0))


def missing_ranges(conn: Connection, kit: str, limit: int = MAX_RANGES) -> tuple[list[tuple[int, int]], int]:
    """Seq ranges [first, last] below the mark that HQ neither stored nor refused; and how many seqs in all."""
    seqs = sa.union(sa.select(schema.events.c.seq.label("seq")).where(schema.events.c.kit == kit),
                    sa.select(schema.refused.c.seq.label("seq")).where(schema.refused.c.kit == kit)).subquery()
    nxt = sa.func.lead(seqs.c.seq).over(order_by=seqs.c.seq)
    pairs = sa.select(seqs.c.seq.label("seq"), nxt.label("next")).subquery()
    query = (sa.select(pairs.c.seq, pairs.c.next).where(pairs.c.next > pairs.c.seq + 1).order_by(pairs.c.seq))
    first = conn.execute(sa.select(sa.func.min(seqs.c.seq))).scalar()
    ranges: list[tuple[int, int]] = []
    total = 0
    if first is not None and first > 1:
        ranges.append((1, int(first) - 1))
        total += int(first) - 1
    for seq, nxt_seq in conn.execute(query):
        total += int(nxt_seq) - int(seq) - 1
        if len(ranges) < limit:
            ranges.append((int(seq) + 1, int(nxt_seq) - 1))
    return ranges, total


@dataclass
class ChainState:
    """The outcome of checking one kit's chain over what HQ holds."""

    events: int = 0
    linked: int = 0  # events whose hash was recomputed from their contents and the event before
    unlinked: int = 0  # events whose predecessor HQ lacks (a hole): checked once it arrives
    breaks: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks

    def summary(self) -> str:
        if self.breaks:
            seq, reason = self.breaks[0]
            more = f" (+{len(self.breaks) - 1} more)" if len(self.breaks) > 1 else ""
            return f"BROKEN at seq {seq}: {reason}{more}"
        if self.unlinked:
            return f"ok ({self.linked} linked, {self.unlinked} wait for a missing event)"
        return f"ok ({self.linked} linked)" if self.events else "no events"


def _row_hash(prev: str, row) -> str:
    return _chain_hash(prev, row.seq, row.id, row.kit, row.type, row.payload, row.hlc, row.wall_time,
                       int(bool(row.clock_synced)))


def verify_chain(engine: Engine, kit: str, max_breaks: int = 20) -> ChainState:
    """Recompute the chain over every event HQ holds from ``kit``, in seq order (streamed)."""
    state = ChainState()
    cols = schema.events.c
    query = (sa.select(cols.seq, cols.id, cols.kit, cols.type, cols.payload, cols.hlc, cols.wall_time,
                       cols.clock_synced, cols.hash).where(cols.kit == kit).order_by(cols.seq, cols.id))
    with engine.connect() as conn:
        refused = dict(conn.execute(sa.select(schema.refused.c.seq, schema.refused.c.hash)
                                    .where(schema.refused.c.kit == kit)).all())
        prev_seq, prev_hash = 0, GENESIS
        for row in conn.execution_options(yield_per=2000).execute(query):
            state.events += 1
            if row.seq == prev_seq:
                if len(state.breaks) < max_breaks:
                    state.breaks.append((row.seq, "stored twice with different ids (the kit's ledger was replaced?)"))
                continue
            before = prev_hash if row.seq == prev_seq + 1 else refused.get(row.seq - 1) or None
            if before is None:
                state.unlinked += 1
            elif _row_hash(before, row) == row.hash:
                state.linked += 1
            elif len(state.breaks) < max_breaks:
                state.breaks.append((row.seq, "its hash does not match its contents and the event before "
                                               "(edited, replaced or an event lost)"))
            prev_seq, prev_hash = row.seq, row.hash
    return state


def _dict_hash(prev: str, row: dict) -> str:
    return _chain_hash(prev, row["seq"], row["id"], row["kit"], row["type"], row["payload"], row["hlc"],
                       row["wall_time"], int(bool(row["clock_synced"])))


def _held(conn: Connection, kit: str, where) -> dict[int, object]:
    cols = schema.events.c
    return {r.seq: r for r in conn.execute(
        sa.select(cols.seq, cols.id, cols.kit, cols.type, cols.payload, cols.hlc, cols.wall_time, cols.clock_synced,
                  cols.hash).where(cols.kit == kit, where))}


def check_new_links(conn: Connection, kit: str, rows: list[dict]) -> list[int]:
    """Right after a batch is stored: check the links its rows made; log and return the seqs that break.

    ``rows`` are the rows this batch stored. When they are a contiguous run and HQ holds nothing else in
    that range (the usual upload), they are checked as they are in memory and only the two neighbours
    are read back; otherwise every held row around them is read back.
    """
    if not rows:
        return []
    seqs = {r["seq"] for r in rows}
    low, high = min(seqs), max(seqs)
    cols = schema.events.c
    held: dict[int, object] = {}
    if len(seqs) == len(rows) == high - low + 1:
        in_range = conn.execute(sa.select(sa.func.count()).select_from(schema.events)
                                .where(cols.kit == kit, cols.seq.between(low, high))).scalar()
        if in_range == len(rows):
            held = {r["seq"]: r for r in rows}
            held.update(_held(conn, kit, cols.seq.in_([low - 1, high + 1])))
    if not held:
        held = _held(conn, kit, cols.seq.between(low - 1, high + 1))
    broken = []
    for seq in sorted(seqs | {s + 1 for s in seqs}):
        row, before = held.get(seq), held.get(seq - 1)
        prev = GENESIS if seq == 1 else (_hash_of(before) if before is not None else None)
        if row is None or prev is None:
            continue
        digest = _dict_hash(prev, row) if isinstance(row, dict) else _row_hash(prev, row)
        if digest != _hash_of(row):
            broken.append(seq)
            log.warning("event=chain_break kit=%s seq=%d reason=%r", kit, seq,
                        "the hash does not match the event's contents and the event before")
    return broken


def _hash_of(row) -> str:
    return row["hash"] if isinstance(row, dict) else row.hash


def kit_integrity(engine: Engine, kit: str) -> dict:
    """Events, mark, holes and chain of one kit: what `hq kits list` and the report show."""
    with engine.connect() as conn:
        ranges, missing = missing_ranges(conn, kit)
        mark = stored_mark(conn, kit)
        refused = conn.execute(sa.select(sa.func.count()).select_from(schema.refused)
                               .where(schema.refused.c.kit == kit)).scalar() or 0
    chain = verify_chain(engine, kit)
    return {"kit": kit, "events": chain.events, "hwm": mark, "missing": missing, "missing_ranges": ranges,
            "refused": int(refused), "chain": chain}


def format_ranges(ranges: list[tuple[int, int]], limit: int = 5) -> str:
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges[:limit])
    return text + (f", … ({len(ranges) - limit} more ranges)" if len(ranges) > limit else "")


def report_section(engine: Engine, kits: list[str]):
    """The reconciliation report's view of each kit's upload: every event there, the chain unbroken."""
    from sync.hq.integrity_bulk import kits_integrity
    from sync.hq.sections import Section

    rows = []
    every = kits_integrity(engine, kits)  # one query per question for all kits, not four per kit
    for kit in kits:
        info = every[kit]
        chain: ChainState = info["chain"]
        if not chain.ok:
            status = f"CHAIN BROKEN AT SEQ {chain.breaks[0][0]}"
        elif info["missing"]:
            status = f"{info['missing']} EVENTS MISSING"
        else:
            status = "ok"
        rows.append([kit, info["events"], info["hwm"], info["missing"], format_ranges(info["missing_ranges"]),
                     info["refused"], chain.summary(), status])
    return Section("integrity", "Uploads per kit: every event there, hash chain unbroken",
                   ["kit", "events", "hwm", "missing", "missing_seqs", "refused", "chain", "status"], rows, flag="status",
                   note="Missing events are sent again by the kit at its next sync. A broken chain means an event "
                        "at HQ was edited or replaced, or the kit lost one: compare with `fieldkit ledger verify` "
                        "on the kit.")
