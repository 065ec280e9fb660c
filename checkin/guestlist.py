"""The paper backup: a printable guest list sorted by last name, with ticket type and code.

Printed during setup; if the kit itself fails, the door works from this sheet with a pen.
"""

from __future__ import annotations

import html
import sqlite3
from datetime import datetime
from zoneinfo import ZoneInfo

PAGE_CSS = """
body { font: 11pt/1.3 sans-serif; margin: 1.5cm; color: #000; }
h1 { font-size: 16pt; margin: 0 0 .2em; } p.meta { margin: 0 0 1em; }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid #999; }
th { border-bottom: 2px solid #000; } td.box { width: 1.2em; border: 1px solid #000; }
tr.letter td { font-weight: bold; background: #ddd; border-bottom: 2px solid #000; }
tr.void td { text-decoration: line-through; color: #555; }
th, td { overflow-wrap: break-word; } td.code { white-space: nowrap; }
@media print { thead { display: table-header-group; } tr { page-break-inside: avoid; } }
/* On a phone's screen the full name is enough: the last-name column (the sort key) goes, nothing overflows. */
@media screen and (max-width: 600px) { body { margin: .5rem; font-size: 10pt; } th, td { padding: 3px 3px; }
  th.last, td.last { display: none; } }
"""


def guest_rows(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT name, last_name, email, order_code, ticket_type, status, attention FROM checkin_tickets"
        " WHERE source != 'rehearsal' ORDER BY last_name COLLATE NOCASE, name COLLATE NOCASE").fetchall()


def guestlist_html(conn: sqlite3.Connection, event: str, tz: ZoneInfo, kit: str) -> str:
    rows = guest_rows(conn)
    made = datetime.now(tz).strftime("%Y-%m-%d %H:%M")
    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Guest list — {html.escape(event)}</title>",
           "<meta name='viewport' content='width=device-width, initial-scale=1'>",
           f"<style>{PAGE_CSS}</style></head><body><main>",
           f"<h1>Guest list — {html.escape(event)}</h1>" if event else "<h1>Guest list</h1>",
           f"<p class='meta'>{len(rows)} tickets · printed {made} from kit {html.escape(kit)} · "
           "tick the box when the guest is in; struck-out tickets are refunded or blocked</p>",
           "<table><thead><tr><th><span style='position:absolute;left:-9999px'>In</span></th><th class='last'>Last name</th><th>Name</th><th>Type</th><th>Code</th><th>Note</th></tr>"
           "</thead><tbody>"]
    letter = None
    for r in rows:
        first = (r["last_name"] or r["name"] or "?")[:1].upper()
        if first != letter:
            letter = first
            out.append(f"<tr class='letter'><td colspan='6'>{html.escape(letter)}</td></tr>")
        note = {"revoked": "REFUNDED", "blocked": "BLOCKED — call a lead", "reissued": "REISSUED — new code"}.get(r["status"], "")
        if r["attention"]:
            note = (note + " special attention").strip()
        cls = " class='void'" if r["status"] != "valid" else ""
        out.append(f"<tr{cls}><td class='box'></td><td class='last'>{html.escape(r['last_name'])}</td><td>{html.escape(r['name'])}</td>"
                   f"<td>{html.escape(r['ticket_type'])}</td><td class='code'>{html.escape(r['order_code'])}</td>"
                   f"<td>{html.escape(note)}</td></tr>")
    out.append("</tbody></table></main></body></html>")
    return "\n".join(out)
