"""Record ids that sort by the time they were made (UUID version 7, RFC 9562).

A version-4 id is random, so every new sale, line, payment and event lands on a random leaf page of
its index: with 100,000 sales stored those pages are rarely in SQLite's cache and each insert reads
one back first. A version-7 id starts with the Unix time in milliseconds, so new rows land beside the
last ones, on pages the previous sale just used. 74 random bits keep ids unguessable and unique.
"""

from __future__ import annotations

import os
import time
import uuid


def time_ordered_uuid(now: float | None = None) -> str:
    ms = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    rand = int.from_bytes(os.urandom(10), "big")  # 80 bits: 12 for rand_a, 62 for rand_b, 6 spare
    rand_a, rand_b = rand >> 68, rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=(ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b))
