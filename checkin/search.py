"""Name / e-mail / order-code search over the attendee list, instant on 100,000 tickets (FTS5 prefix index)."""

from __future__ import annotations

import re
import sqlite3

from checkin.validate import DoorRules, presence

_TOKEN_RE = re.compile(r"[\w]+", re.UNICODE)


def fts_query(text: str) -> str:
    """Every word as a quoted prefix term, ANDed: 'ann sm' finds 'Anna Smith' and 'smi@x.org' parts."""
    tokens = _TOKEN_RE.findall(text.lower())[:6]
    return " AND ".join(f'"{t}"*' for t in tokens)


def search_tickets(conn: sqlite3.Connection, rules: DoorRules, text: str, limit: int = 20,
                   rehearsal: bool = False) -> list[dict]:
    text = (text or "").strip()[:100]
    if len(text) < 2:
        return []
    query = fts_query(text)
    rows: list[sqlite3.Row] = []
    exact = conn.execute(
        "SELECT * FROM checkin_tickets WHERE order_code = ? COLLATE NOCASE OR email = ? COLLATE NOCASE LIMIT ?",
        (text, text, limit)).fetchall()
    rows.extend(exact)
    if query:
        # No ORDER BY in SQL: sorting every match of a short prefix ("an") would touch thousands of rows;
        # the index hands back the first few hundred and those are sorted here.
        matches = conn.execute(
            "SELECT t.* FROM checkin_tickets_fts f JOIN checkin_tickets t ON t.id = f.rowid"
            " WHERE checkin_tickets_fts MATCH ? LIMIT ?", (query, limit * 10)).fetchall()
        rows.extend(sorted(matches, key=lambda r: (r["last_name"].lower(), r["name"].lower())))
    seen: set[str] = set()
    results = []
    for r in rows:
        if r["ticket_key"] in seen or (r["source"] == "rehearsal" and not rehearsal):
            continue
        seen.add(r["ticket_key"])
        state = presence(conn, rules, r["ticket_key"], rehearsal)
        results.append({
            "ticket_key": r["ticket_key"], "name": r["name"], "email": r["email"], "order_code": r["order_code"],
            "ticket_type": r["ticket_type"], "status": r["status"], "attention": bool(r["attention"]),
            "inside": state.inside,
            "checked_in": (f"{state.last_in['door']} {rules.clock_text(state.last_in['at'])}"
                           if state.inside and state.last_in else ""),
        })
        if len(results) >= limit:
            break
    return results
