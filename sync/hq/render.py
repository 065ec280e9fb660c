"""The reconciliation report as text, CSV, JSON or one self-contained HTML page with inline SVG charts."""

from __future__ import annotations

import csv
import html
import io
import json

from sync.hq.sections import Report, Section, format_cents


def cell(section: Section, column: str, value) -> str:
    if value is None:
        return ""
    if column in section.money and isinstance(value, int):
        return format_cents(value)
    return str(value)


def render(report: Report, fmt: str, section: str | None = None) -> str:
    if fmt == "json":
        return json.dumps(report.as_dict(), indent=2, default=str) + "\n"
    if fmt == "csv":
        return render_csv(report, section)
    if fmt == "html":
        return render_html(report)
    return render_text(report)


def render_text(report: Report) -> str:
    period = f", {report.period}" if report.period else ""
    out = [f"Reconciliation for {'site ' + report.site if report.site else 'every site'}{period} — {report.generated_at}",
           f"Kits: {', '.join(report.kits) or 'none'}; amounts in {report.currency}", ""]
    for s in report.sections:
        flagged = f" — {s.flagged} problem(s)" if s.flagged else ""
        out.append(f"== {s.title}{flagged}")
        if not s.rows:
            out.append("   (nothing)")
        else:
            table = [s.columns] + [[cell(s, c, v) for c, v in zip(s.columns, r, strict=True)] for r in s.rows]
            widths = [min(40, max(len(str(row[i])) for row in table)) for i in range(len(s.columns))]
            for row in table:
                out.append("   " + "  ".join(str(v)[:40].ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        out.append("")
    for note in report.notes:
        out.append(f"note: {note}")
    return "\n".join(out) + "\n"


def render_csv(report: Report, only: str | None = None) -> str:
    """One section as a plain table, or every section one after another, each under a title row."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    sections = [report.section(only)] if only else report.sections
    for i, s in enumerate(sections):
        if not only:
            if i:
                writer.writerow([])
            writer.writerow([f"# {s.title}"])
        writer.writerow(s.columns)
        for r in s.rows:
            writer.writerow([cell(s, c, v) for c, v in zip(s.columns, r, strict=True)])
    return buf.getvalue()


def bar_chart(title: str, data: list[tuple[str, int]], money: bool = False) -> str:
    """Horizontal bars drawn as inline SVG: no script, no external asset."""
    if not data:
        return f'<p class="muted">{html.escape(title)}: no data yet.</p>'
    label_w, bar_w, row_h = 160, 420, 26
    top = max(1, max(abs(v) for _, v in data))
    height = row_h * len(data) + 30
    parts = [f'<svg class="chart" role="img" aria-label="{html.escape(title)}" viewBox="0 0 {label_w + bar_w + 110} {height}"'
             f' width="100%" xmlns="http://www.w3.org/2000/svg">',
             f'<text x="0" y="16" font-weight="700" font-size="15">{html.escape(title)}</text>']
    for i, (label, value) in enumerate(data):
        y = 28 + i * row_h
        w = max(1, int(bar_w * abs(value) / top))
        shown = format_cents(value) if money else str(value)
        parts.append(f'<text x="{label_w - 6}" y="{y + 16}" text-anchor="end" font-size="13">{html.escape(label[:24])}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{w}" height="{row_h - 8}" fill="{"#b3261e" if value < 0 else "#0b57d0"}"/>')
        parts.append(f'<text x="{label_w + w + 6}" y="{y + 16}" font-size="13">{html.escape(shown)}</text>')
    parts.append("</svg>")
    return "".join(parts)


STYLE = """
body{font-family:system-ui,sans-serif;margin:1rem auto;max-width:1200px;padding:0 1rem;color:#111}
h1{font-size:1.5rem} h2{font-size:1.15rem;margin-top:1.6rem}
table{border-collapse:collapse;width:100%;font-size:.92rem} th,td{border-bottom:1px solid #ccc;padding:.3rem .4rem;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums} tr.flag td{background:#ffd6db;font-weight:600}
.muted{color:#555} .charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:1rem}
.summary li.bad{color:#8c1d18;font-weight:700} a.csv{font-size:.85rem;margin-left:.6rem}
"""


def render_html(report: Report, query: str = "") -> str:
    e = html.escape
    where = (f"site {report.site}" if report.site else "every site") + (f", {report.period}" if report.period else "")
    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' content='width=device-width,"
           f"initial-scale=1'><title>Reconciliation — {e(where)}</title><style>{STYLE}</style></head><body>",
           f"<h1>Reconciliation — {e(where)}</h1>",
           f"<p class='muted'>Built {e(report.generated_at)} from the events kits uploaded. Kits: {e(', '.join(report.kits) or 'none')}."
           f" Amounts in {e(report.currency)}. <a href='report.csv{e(query)}'>Download everything as CSV</a></p>",
           "<ul class='summary'>"]
    for s in report.sections:
        bad = " class='bad'" if s.flagged else ""
        problems = f": {s.flagged} to look at" if s.flagged else ""
        out.append(f"<li{bad}><a href='#{s.key}'>{e(s.title)}</a>{problems}</li>")
    out.append("</ul><div class='charts'>")
    out.append(bar_chart(f"Takings by kit ({report.currency})", report.charts.get("sales_by_kit", []), money=True))
    out.append(bar_chart("Admissions per hour", [(h[-5:] if len(h) > 5 else h, n)
                                                  for h, n in report.charts.get("admissions_per_hour", [])]))
    out.append("</div>")
    sep = "&" if query else "?"
    for s in report.sections:
        out.append(f"<h2 id='{s.key}'>{e(s.title)}<a class='csv' href='report.csv{e(query)}{sep}section={s.key}'>CSV</a></h2>")
        if s.note:
            out.append(f"<p class='muted'>{e(s.note)}</p>")
        if not s.rows:
            out.append("<p class='muted'>Nothing here.</p>")
            continue
        flag_i = s.columns.index(s.flag) if s.flag else None
        out.append("<table><tr>" + "".join(f"<th>{e(c.replace('_', ' '))}</th>" for c in s.columns) + "</tr>")
        for r in s.rows:
            flagged = flag_i is not None and isinstance(r[flag_i], str) and r[flag_i].isupper()
            tds = "".join(f"<td{' class=num' if isinstance(v, int) else ''}>{e(cell(s, c, v))}</td>"
                          for c, v in zip(s.columns, r, strict=True))
            out.append(f"<tr{' class=flag' if flagged else ''}>{tds}</tr>")
        out.append("</table>")
    for note in report.notes:
        out.append(f"<p class='muted'>Note: {e(note)}</p>")
    out.append("</body></html>")
    return "\n".join(out)
