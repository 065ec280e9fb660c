"""Fixtures for sync and HQ: a real PostgreSQL (or SQLite) HQ under waitress, a kit with a ledger,
and a TCP proxy that cuts connections at random points."""

from __future__ import annotations

import random
import secrets
import socket
import threading

import pytest

from sync.hq import schema, store
from sync.hq.testing import HQServer, TestPostgres


@pytest.fixture(scope="session")
def postgres():
    pg = TestPostgres().start()
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def postgres_hq_url(postgres):
    """One PostgreSQL database for the session's HQ tests (creating one per test costs a second)."""
    return postgres.create_database(f"fk_hq_{secrets.token_hex(4)}")


@pytest.fixture(params=["sqlite", "postgresql"])
def hq_url_db(request, tmp_path):
    """An empty HQ database URL, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hq.db'}"
    url = request.getfixturevalue("postgres_hq_url")
    engine = store.make_engine(url)
    schema.metadata.drop_all(engine)  # empty, as a fresh database would be
    engine.dispose()
    return url


@pytest.fixture
def hq_engine(hq_url_db):
    engine = store.make_engine(hq_url_db)
    store.create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def hq(hq_engine):
    server = HQServer(hq_engine)
    yield server
    server.stop()


@pytest.fixture
def joined(config, hq):
    """The test kit registered at the HQ and joined to it; returns the reloaded config."""
    from sync.credentials import join

    token = store.add_kit(hq.engine, config.kit_id, config.site)
    return join(config, hq.url, token)


def append_events(ctx_or_ledger_db, ledger, count: int, type_: str = "pos.sale", start: int = 0) -> None:
    db = ctx_or_ledger_db
    for first in range(0, count, 1000):
        with db.transaction() as conn:
            for i in range(first, min(count, first + 1000)):
                ledger.append(conn, type_, {"n": start + i, "total_cents": 100 + i % 7})


class FaultProxy:
    """A TCP proxy that, per connection, may cut the link after a random number of bytes either way.

    Cutting the client→HQ direction interrupts a request mid-way; cutting HQ→client drops an answer
    after HQ has committed the batch. ``cut_ratio`` of connections are cut; the rest pass untouched.
    """

    def __init__(self, upstream_port: int, seed: int = 7, cut_ratio: float = 0.0) -> None:
        self.upstream_port = upstream_port
        self.rng = random.Random(seed)
        self.cut_ratio = cut_ratio
        self.cuts = {"request": 0, "response": 0}
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _plan(self) -> tuple[float, float]:
        with self._lock:
            if self.rng.random() >= self.cut_ratio:
                return float("inf"), float("inf")
            # Budgets span a few requests: connections are kept alive across batches.
            if self.rng.random() < 0.5:
                return self.rng.randint(0, 200_000), float("inf")  # cut mid-request
            return float("inf"), self.rng.randint(0, 60_000)  # HQ committed, the answer is lost

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            up_budget, down_budget = self._plan()
            closed = threading.Event()
            threading.Thread(target=self._pump, args=(client, upstream, up_budget, "request", closed), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, down_budget, "response", closed), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, budget: float, direction: str, closed: threading.Event) -> None:
        try:
            while not closed.is_set():
                data = src.recv(65536)
                if not data:
                    break
                if len(data) > budget:
                    if budget > 0:
                        dst.sendall(data[: int(budget)])
                    with self._lock:
                        self.cuts[direction] += 1
                    break
                budget -= len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            closed.set()
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
