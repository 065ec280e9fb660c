"""How one checked batch goes into hq_events in one round: executemany on SQLite, COPY on PostgreSQL.

Only rows validate.py passed come here: every text field but the payload matched a pattern of
letters, digits and a few signs, and the payload is JSON text without NUL characters.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sync.hq import facts

# In the order _sqlite_rows builds them; every column of hq_events.
COLUMNS = (
    "id",
    "kit",
    "seq",
    "type",
    "payload",
    "hlc",
    "wall_time",
    "clock_synced",
    "hash",
    "received_at",
    "event_time",
    "time_trusted",
)
_SQLITE_INSERT = (
    f"INSERT INTO hq_events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    " ON CONFLICT (id) DO NOTHING"
)
_PG_STAGE = "CREATE TEMP TABLE IF NOT EXISTS hq_events_incoming (LIKE hq_events) ON COMMIT DELETE ROWS"
_PG_COPY = f"COPY hq_events_incoming ({', '.join(COLUMNS)}) FROM STDIN"
_PG_MERGE = (
    f"INSERT INTO hq_events ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} FROM hq_events_incoming"
    " ON CONFLICT (id) DO NOTHING RETURNING id"
)
_SQLITE_CHUNK = 500  # ids per IN (...) lookup, well under SQLite's variable limit


def _sqlite_time(value: datetime) -> str:
    """A DateTime as SQLAlchemy itself stores it on SQLite, so both insert paths read back alike."""
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]


def _sqlite_rows(rows: list[dict]) -> list[tuple]:
    received: dict[datetime, str] = {}  # one batch, one received_at: formatted once
    out = []
    for r in rows:
        at = r["received_at"]
        if at not in received:
            received[at] = _sqlite_time(at)
        out.append(
            (
                r["id"],
                r["kit"],
                r["seq"],
                r["type"],
                r["payload"],
                r["hlc"],
                r["wall_time"],
                int(r["clock_synced"]),
                r["hash"],
                received[at],
                _sqlite_time(r["event_time"]),
                int(r["time_trusted"]),
            )
        )
    return out


def _copy_text(value) -> str:
    """One field in COPY's text format (validated values: no NUL; escape what the format reserves)."""
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def _copy_lines(rows: list[dict]) -> str:
    """The batch in COPY's text format, one line per row, in COLUMNS order.

    Only the payload can hold a character COPY reserves (JSON text escapes tabs and newlines itself, so
    in practice a backslash). Every other text field passed a pattern of
    letters, digits and a few signs (validate.py), so it goes in as it is. One batch has one
    received_at, formatted once.
    """
    formatted: dict[datetime, str] = {}
    out = []
    for r in rows:
        at = r["received_at"]
        if at not in formatted:
            formatted[at] = at.isoformat()
        payload = _copy_text(r["payload"])  # a backslash at most (JSON escapes the rest), but checked
        out.append(
            f"{r['id']}\t{r['kit']}\t{r['seq']}\t{r['type']}\t{payload}\t{r['hlc']}\t{r['wall_time']}\t"
            f"{'t' if r['clock_synced'] else 'f'}\t{r['hash']}\t{formatted[at]}\t{r['event_time'].isoformat()}\t"
            f"{'t' if r['time_trusted'] else 'f'}\n"
        )
    return "".join(out)


def _insert_batch(conn, rows: list[dict]) -> set[str]:
    """Every row in one round of statements, duplicates of stored ids ignored; returns the ids stored.

    SQLite: inside the write lock (BEGIN IMMEDIATE), look up which ids are held, then one executemany.
    PostgreSQL: COPY into a temporary table, then one INSERT ... SELECT ... ON CONFLICT DO NOTHING
    RETURNING id, which is right even with several HQ processes storing the same batch at once.
    """
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        if conn.engine.dialect.name == "postgresql":
            info = conn.connection.info  # lives as long as the database session, as the temp table does
            if not info.get("hq_events_incoming"):
                cursor.execute(_PG_STAGE)
                info["hq_events_incoming"] = True
            with cursor.copy(_PG_COPY) as copy:
                copy.write(_copy_lines(rows))
            cursor.execute(_PG_MERGE)
            stored = {r[0] for r in cursor.fetchall()}
        else:
            ids = [r["id"] for r in rows]
            held: set[str] = set()
            for first in range(0, len(ids), _SQLITE_CHUNK):
                chunk = ids[first : first + _SQLITE_CHUNK]
                cursor.execute(f"SELECT id FROM hq_events WHERE id IN ({','.join('?' * len(chunk))})", chunk)
                held.update(r[0] for r in cursor.fetchall())
            cursor.executemany(_SQLITE_INSERT, _sqlite_rows([r for r in rows if r["id"] not in held]))
            stored = set(ids) - held
    finally:
        cursor.close()
    # The report's facts of what was stored, in the same transaction (sync/hq/facts.py).
    facts.store_for(conn, [r for r in rows if r["id"] in stored])
    return stored
