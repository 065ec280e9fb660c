"""What the core hands each feature's ``erase_personal_data`` hook (kit/privacy.py): an ErasureContext
whose statements run in the erasure's transaction, or only count for `fieldkit privacy status`."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kit.config import Config
from kit.db import Database

ErasureHook = Callable[["ErasureContext"], None]
AcknowledgedHook = Callable[[Database, Config], "int | None"]


@dataclass
class Hooks:
    erase: list[tuple[str, ErasureHook]] = field(default_factory=list)  # (feature, hook)
    acknowledged: list[AcknowledgedHook] = field(default_factory=list)


def hooks_from(features: Iterable) -> Hooks:
    """The hooks of the features a caller has loaded (kit.features.load_features())."""
    hooks = Hooks()
    for f in features:
        if getattr(f, "erase_personal_data", None):
            hooks.erase.append((f.name, f.erase_personal_data))
        if getattr(f, "acknowledged_seq", None):
            hooks.acknowledged.append(f.acknowledged_seq)
    return hooks


class ErasureContext:
    """What a feature's hook is given: its statements run in the erasure's transaction, or only count
    (``dry_run``, for `fieldkit privacy status`). Tables or columns that do not exist are skipped, so a
    hook keeps working on a database from before a migration."""

    def __init__(self, conn: sqlite3.Connection, config: Config, dry_run: bool, feature: str = ""):
        self.conn, self.config, self.dry_run, self.feature = conn, config, dry_run, feature
        self.counts: dict[str, dict[str, int]] = {}
        self.files: list[tuple[str, Path]] = []  # (feature, path) removed after the commit

    def _columns(self, table: str) -> set[str]:
        return {r[1] for r in self.conn.execute(f'PRAGMA table_info("{table}")')}

    def _count(self, what: str, n: int) -> int:
        bucket = self.counts.setdefault(self.feature, {})
        bucket[what] = bucket.get(what, 0) + n
        return n

    def has_table(self, table: str) -> bool:
        return bool(self._columns(table))

    def record(self, what: str, n: int) -> int:
        """Count what a feature's own code erased (a rule it keeps in its domain module)."""
        return self._count(what, n)

    def blank(
        self, what: str, table: str, columns: Iterable[str], where: str = "1", params: tuple = ()
    ) -> int:
        """Set the personal columns of ``table`` to '' (rows keep their keys and state)."""
        present = [c for c in columns if c in self._columns(table)]
        if not present:
            return self._count(what, 0)
        holds = " OR ".join(f"COALESCE(\"{c}\", '') != ''" for c in present)
        cond = f"({where}) AND ({holds})"
        if self.dry_run:
            n = self.conn.execute(f'SELECT COUNT(*) FROM "{table}" WHERE {cond}', params).fetchone()[0]
        else:
            sets = ", ".join(f"\"{c}\" = ''" for c in present)
            n = self.conn.execute(f'UPDATE "{table}" SET {sets} WHERE {cond}', params).rowcount
        return self._count(what, n)

    def blank_json(self, what: str, table: str, column: str, keys: Iterable[str]) -> int:
        """Remove ``keys`` from a JSON object kept in ``column`` (a peer's payload as received)."""
        if column not in self._columns(table):
            return self._count(what, 0)
        paths = [f"$.{k}" for k in keys]
        holds = " OR ".join(f'json_extract("{column}", ?) IS NOT NULL' for _ in paths)
        cond = f'json_valid("{column}") AND ({holds})'
        if self.dry_run:
            n = self.conn.execute(f'SELECT COUNT(*) FROM "{table}" WHERE {cond}', paths).fetchone()[0]
        else:
            marks = ", ".join("?" * len(paths))
            n = self.conn.execute(
                f'UPDATE "{table}" SET "{column}" = json_remove("{column}", {marks}) WHERE {cond}',
                [*paths, *paths],
            ).rowcount
        return self._count(what, n)

    def delete(self, what: str, table: str, where: str = "1", params: tuple = ()) -> int:
        if not self._columns(table):
            return self._count(what, 0)
        sql = (
            f'SELECT COUNT(*) FROM "{table}" WHERE {where}'
            if self.dry_run
            else f'DELETE FROM "{table}" WHERE {where}'
        )
        cur = self.conn.execute(sql, params)
        return self._count(what, cur.fetchone()[0] if self.dry_run else cur.rowcount)

    def run(self, sql: str, params: tuple = ()) -> None:
        """A statement that only makes sense when erasing (an index rebuild); skipped when counting."""
        if not self.dry_run:
            self.conn.execute(sql, params)

    def remove_files(self, what: str, paths: Iterable[Path]) -> int:
        found = [Path(p) for p in paths if Path(p).is_file()]
        self.files += [(self.feature, p) for p in found]
        return self._count(what, len(found))

    def remove_documents(self, kind: str) -> int:
        """The raw copies of every imported version of a document kind that holds personal data."""
        paths = [r[0] for r in self.conn.execute("SELECT path FROM kit_documents WHERE kind = ?", (kind,))]
        return self.remove_files(f"raw copies of {kind} documents (files)", paths)
