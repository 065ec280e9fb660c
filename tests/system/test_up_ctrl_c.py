"""Ctrl-C on `fieldkit up --simulate` (what `make demo` runs) with pages open: every process stops, every open
live stream ends, and nothing is printed but the services' own stop lines (it printed one waitress
"Bad file descriptor" traceback per open page). Real processes, real sockets, signed-in streams of three roles.
"""

from __future__ import annotations

import re
import signal
import socket
import threading

import requests

ROLES = ("lead", "lead", "lead", "door", "merch", "door", "merch", "lead", "lead")  # nine open pages


def cookie_for(url: str, pin: str) -> str:
    s = requests.Session()
    token = re.search(r'name="csrf_token" value="([^"]+)"', s.get(url + "login", timeout=5).text).group(1)
    r = s.post(url + "login", data={"pin": pin, "csrf_token": token}, allow_redirects=False, timeout=5)
    assert r.status_code == 302, r.text
    return "; ".join(f"{k}={v}" for k, v in s.cookies.items())


class OpenPage(threading.Thread):
    """One `/events` stream read to its end; ``ended`` is set when the server closes it."""

    def __init__(self, port: int, cookie: str):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.sendall(f"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n"
                          "Accept: text/event-stream\r\n\r\n".encode())
        self.received = b""
        self.connected, self.ended = threading.Event(), threading.Event()

    def run(self) -> None:
        try:
            while chunk := self.sock.recv(65536):
                self.received += chunk
                if b": connected" in self.received:
                    self.connected.set()
        except OSError:
            pass
        finally:
            self.ended.set()
            self.sock.close()


def test_ctrl_c_with_open_pages_stops_cleanly(kit_factory):
    kit = kit_factory()  # every service, as `make demo`
    port = int(kit.url.rsplit(":", 1)[1].strip("/"))
    pages = [OpenPage(port, cookie_for(kit.url, kit.pins[role])) for role in ROLES]
    for p in pages:
        p.start()
    for p in pages:
        assert p.connected.wait(10), f"stream not open: {p.received[:200]!r}"
        assert b" 200 " in p.received.split(b"\r\n", 1)[0]

    kit.proc.send_signal(signal.SIGINT)  # the terminal's Ctrl-C reaches the supervisor (children have sessions)
    assert kit.proc.wait(30) == 0

    assert all(p.ended.wait(5) for p in pages), "an open page's stream was left hanging"
    log = kit.log_path.read_text()
    assert "event=stopped name=web" in log
    assert "Traceback" not in log, log[log.index("Traceback") - 300:][:3000]
    errors = [line for line in log.splitlines() if " ERROR " in line or "Bad file descriptor" in line]
    assert errors == [], "\n".join(errors)
