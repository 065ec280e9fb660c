"""The web server keeps as many SQLite connections as requests ran at once, not one per waitress thread ever
used (32 threads each held a connection, its page cache and two descriptors, for the process's life);
an open live stream holds none. A real waitress server with the kit's options, the real database."""

from __future__ import annotations

import os

from .test_stream_roles import StreamReader, signed_in
from .test_stream_stalled import served  # noqa: F401  (a fixture)


def db_descriptors(db_path) -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(db_path):
                n += 1
        except OSError:
            pass
    return n


def test_sequential_requests_share_connections_and_streams_hold_none(served, kit_env, ctx):  # noqa: F811
    base, _srv, _port = served
    door = signed_in(base, kit_env["pins"]["door"])
    readers = [StreamReader(signed_in(base, kit_env["pins"]["lead"]), base + "/events?topics=%23") for _ in range(6)]
    for r in readers:
        r.start()
    for r in readers:
        assert r.connected.wait(5)
    before = db_descriptors(ctx.config.db_path)
    for _ in range(60):  # spread over waitress's threads: each would have opened its own connection
        assert door.get(base + "/api/v1/checkin/stats", timeout=5).status_code == 200
    after = db_descriptors(ctx.config.db_path)
    assert ctx.config["web.threads"] >= 16
    assert after <= before + 2, f"{after - before} more connections to the database after 60 requests one at a time"
