"""What a report is made of: its sections, the events it reads, and money as text (sync/hq/reconcile.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class Section:
    key: str
    title: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    money: tuple[str, ...] = ()  # columns holding cents
    flag: str | None = None  # the column whose upper-case values are problems
    note: str = ""

    @property
    def flagged(self) -> int:
        if self.flag is None:
            return 0
        i = self.columns.index(self.flag)
        return sum(1 for r in self.rows if isinstance(r[i], str) and r[i].isupper())

    def as_dict(self) -> dict:
        return {"key": self.key, "title": self.title, "columns": self.columns, "rows": self.rows,
                "money": list(self.money), "flag": self.flag, "flagged": self.flagged, "note": self.note}


@dataclass
class Report:
    site: str | None
    generated_at: str
    currency: str
    kits: list[str]
    sections: list[Section]
    charts: dict[str, list[tuple[str, int]]]
    notes: list[str]
    period: str = ""

    def section(self, key: str) -> Section:
        return next(s for s in self.sections if s.key == key)

    @classmethod
    def from_dict(cls, d: dict) -> Report:
        """The report ``as_dict`` made (``fieldkit mirror report --format json``), for rendering it again."""
        sections = [Section(s["key"], s["title"], list(s["columns"]), [list(r) for r in s["rows"]],
                            tuple(s.get("money", ())), s.get("flag"), s.get("note", "")) for s in d["sections"]]
        charts = {k: [tuple(v) for v in values] for k, values in d.get("charts", {}).items()}
        return cls(d.get("site"), d["generated_at"], d["currency"], list(d["kits"]), sections, charts,
                   list(d.get("notes", [])), d.get("period", ""))

    def as_dict(self) -> dict:
        return {"site": self.site, "period": self.period, "generated_at": self.generated_at, "currency": self.currency, "kits": self.kits,
                "sections": [s.as_dict() for s in self.sections], "charts": self.charts, "notes": self.notes}


@dataclass
class Ev:
    kit: str
    id: str
    type: str
    p: dict
    at: datetime
    trusted: bool


def as_int(value, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def format_cents(cents: int | None) -> str:
    if cents is None:
        return ""
    minus = "-" if cents < 0 else ""
    return f"{minus}{abs(cents) // 100}.{abs(cents) % 100:02d}"
