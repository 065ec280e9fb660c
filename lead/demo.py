"""Sample data for `make demo`: tonight's run-sheet, its first slot already running."""

from __future__ import annotations

import time
from datetime import datetime

DEMO_SLOTS = [  # (name, minutes, stage, host, note)
    ("Walk-in beats", 20, "Courtyard", "DJ Mara", "Keep it low while the door is busy"),
    ("Poetry bench", 15, "Bench", "Ana", "Mic check 2 min before; the drop opens in the last minute"),
    ("Open mic", 25, "Courtyard", "Sam", "Five minutes per act, the list is at the merch table"),
    ("Closing set", 30, "Courtyard", "DJ Mara", ""),
]


def demo_runsheet(config, now: float | None = None) -> str:
    now = time.time() if now is None else now
    start = (int(now) // 60) * 60 - 5 * 60  # the first slot began five minutes ago
    day = datetime.fromtimestamp(start, config.tz)
    lines = [f'name = "{config["kit.event"] or "Demo evening"}"', f'date = "{day:%Y-%m-%d}"', ""]
    for name, minutes, stage, host, note in DEMO_SLOTS:
        at = datetime.fromtimestamp(start, config.tz)
        lines += ["[[slot]]", f'name = "{name}"', f'start = "{at:%Y-%m-%dT%H:%M}"', f"minutes = {minutes}",
                  f'stage = "{stage}"', f'host = "{host}"'] + ([f'note = "{note}"'] if note else []) + [""]
        start += minutes * 60
    return "\n".join(lines)


def demo_setup(config, db) -> None:
    from kit.documents import import_document
    from lead.documents import KIND

    import_document(config, db, KIND, demo_runsheet(config).encode(), "tonight.toml", source="demo")
