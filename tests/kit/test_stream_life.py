"""An open live stream's life: an idle one is kept alive with a comment every heartbeat, and when the web
service stops every open stream ends at once and no new one opens (a real waitress server, real Mosquitto)."""

from __future__ import annotations

import socket
import time

from kit import topics
from kit.testing import wait_for
from kit.web import sse

from .test_stream_roles import StreamReader, server, signed_in  # noqa: F401  (server is a fixture)
from .test_stream_stalled import served  # noqa: F401  (a fixture)


def raw_stream(base: str, cookie: str) -> socket.socket:
    host, port = base.rsplit("/", 1)[1].split(":")
    s = socket.create_connection((host, int(port)), timeout=5)
    s.sendall(f"GET /events?topics=pos/%23 HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n".encode())
    return s


def read_until(s: socket.socket, marker: bytes, seconds: float) -> bytes:
    got, deadline = b"", time.monotonic() + seconds
    while marker not in got and time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = s.recv(4096)
        except TimeoutError:
            break
        if not chunk:
            break
        got += chunk
    return got


def test_an_idle_stream_gets_a_keepalive_each_heartbeat_and_still_its_events(server, kit_env, ctx,  # noqa: F811
                                                                             monkeypatch):
    monkeypatch.setattr(sse, "HEARTBEAT_SECONDS", 0.5)
    session = signed_in(server, kit_env["pins"]["merch"])
    s = raw_stream(server, "; ".join(f"{k}={v}" for k, v in session.cookies.items()))
    try:
        assert b": connected" in read_until(s, b": connected", 5)
        started = time.monotonic()
        assert b": keepalive" in read_until(s, b": keepalive", 3)
        assert time.monotonic() - started >= 0.3  # not a busy loop of comments
        ctx.bus.publish(topics.event(ctx.config.kit_id, "pos", "sale"), {"sale_id": 7}, qos=1)
        assert b'"sale_id":7' in read_until(s, b'"sale_id":7', 5)
    finally:
        s.close()


def test_stopping_ends_every_open_stream_at_once_and_opens_no_new_one(server, kit_env, ctx):  # noqa: F811
    readers = [StreamReader(signed_in(server, kit_env["pins"][role]), server + "/events?topics=%23")
               for role in ("lead", "door", "merch")]
    for r in readers:
        r.start()
    for r in readers:
        assert r.connected.wait(5)
    hub = ctx.bus.hub
    wait_for(lambda: hub.open_streams() == 3, 5, what="three open streams")
    started = time.monotonic()
    hub.close()  # what the web service does first when it stops
    for r in readers:
        r.join(5)
        assert not r.is_alive(), "a stream stayed open after the hub closed"
    assert time.monotonic() - started < 2  # not after the next heartbeat (15 s)
    assert hub.open_streams() == 0
    late = signed_in(server, kit_env["pins"]["lead"]).get(server + "/events", timeout=5)
    assert late.status_code == 503 and "stopping" in late.text


def test_a_closed_tab_gives_its_stream_back_within_seconds_without_traffic(served, kit_env, ctx):  # noqa: F811
    base, _srv, _port = served  # the kit's own waitress options: it notices a client hanging up
    session = signed_in(base, kit_env["pins"]["merch"])
    s = raw_stream(base, "; ".join(f"{k}={v}" for k, v in session.cookies.items()))  # pos/#: nothing is sent
    assert b": connected" in read_until(s, b": connected", 5)
    hub = ctx.bus.hub
    wait_for(lambda: hub.open_streams() == 1, 5, what="the stream counted")
    s.close()
    started = time.monotonic()
    wait_for(lambda: hub.open_streams() == 0, 2 * sse.GONE_CHECK_SECONDS + 2, what="the stream given back")
    assert time.monotonic() - started < sse.HEARTBEAT_SECONDS  # not only when the next heartbeat fails


def test_screens_reloading_together_are_not_refused_for_their_own_old_streams(served, kit_env, ctx):  # noqa: F811
    base, _srv, _port = served
    session = signed_in(base, kit_env["pins"]["lead"])
    cookie = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
    limit = ctx.config["web.threads"] - sse.SPARE_THREADS
    old = [raw_stream(base, cookie) for _ in range(limit)]  # every stream the server allows
    for s in old:
        assert b": connected" in read_until(s, b": connected", 5)
    assert session.get(base + "/events", timeout=5).status_code == 503  # full: one more is refused
    for s in old:
        s.close()  # every screen reloads at once: the new streams arrive before the old ones are noticed
    time.sleep(0.2)
    new = [raw_stream(base, cookie) for _ in range(limit)]
    try:
        for s in new:
            head = read_until(s, b": connected", 5)
            assert b" 200 " in head.split(b"\r\n", 1)[0], head[:100]
    finally:
        for s in new:
            s.close()
