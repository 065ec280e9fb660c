"""Map TOML key paths back to the line that defined them, so a semantic error can name its line.

tomllib reports positions only for syntax errors; once a document parses, a value no longer knows
where it came from. This scanner walks the text once and records, for every table header and
``key = value`` line, the path it defines (``("cues", 2, "actions", 0, "kind")``). It understands the
subset of TOML a cue sheet uses: bare and quoted keys, dotted keys, ``[table]`` and ``[[array]]``
headers. Keys inside inline tables fall back to the line of the key that holds the inline table.
"""

from __future__ import annotations

import re

Path = tuple[str | int, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_ASSIGN = re.compile(r"^\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*=")


def _split_key(text: str) -> list[str]:
    parts = re.findall(r"\"([^\"]*)\"|'([^']*)'|([A-Za-z0-9_-]+)", text)
    return [a or b or c for a, b, c in parts]


class LineIndex:
    def __init__(self, text: str):
        self.lines: dict[Path, int] = {}
        self._scan(text)

    def _scan(self, text: str) -> None:
        counts: dict[Path, int] = {}  # array-of-tables path -> index of the newest element
        current: Path = ()
        in_multiline: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if in_multiline:
                if in_multiline in line:
                    in_multiline = None
                continue
            header = _HEADER.match(line)
            if header and not _ASSIGN.match(line):
                is_array = header.group(1) == "[["
                keys = _split_key(header.group(2))
                current = (*self._resolve(keys[:-1], counts), keys[-1])
                if is_array:
                    counts[current] = counts.get(current, -1) + 1
                if current in counts:
                    current = (*current, counts[current])
                self.lines.setdefault(current, number)
                continue
            assign = _ASSIGN.match(line)
            if assign:
                path = (*current, *_split_key(assign.group(1)))
                self.lines.setdefault(path, number)
                rest = line[assign.end():]
                for quote in ('"""', "'''"):
                    if rest.count(quote) == 1:
                        in_multiline = quote

    @staticmethod
    def _resolve(keys: list[str], counts: dict[Path, int]) -> Path:
        """A header's path, with array indices filled in for every enclosing array of tables."""
        path: Path = ()
        for key in keys:
            path = (*path, key)
            if path in counts:
                path = (*path, counts[path])
        return path

    def line_of(self, path: Path) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None
