"""A PostgreSQL for tests and benchmarks: the local one if it answers, else a private throwaway cluster.

Used by tests/sync and bench/sync.py. The local server (127.0.0.1:5432, trust auth) gets a private
database per session. Without one, ``initdb`` makes a cluster in a temp dir, started on a free port as
an unprivileged user (PostgreSQL refuses to run as root), and removed afterwards.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from kit.testing import free_port, port_open

PG_USER = "fieldkit-pgtest"


class PostgresUnavailable(RuntimeError):
    pass


def _admin_connect(host: str, port: int, dbname: str = "postgres"):
    import psycopg

    return psycopg.connect(host=host, port=port, user="postgres", dbname=dbname, connect_timeout=3, autocommit=True)


def find_pg_bin(name: str) -> str | None:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]), reverse=True)
    if candidates:
        return candidates[0]
    return shutil.which(name)


class TestPostgres:
    """``url`` points at a fresh, empty database; ``stop()`` drops it (and the cluster, if ours)."""

    __test__ = False  # not a pytest class

    def __init__(self) -> None:
        self.host, self.port = "127.0.0.1", 5432
        self.cluster_dir: Path | None = None
        self._run_as: list[str] = []
        self.database = f"fk_test_{os.getpid()}_{secrets.token_hex(3)}"
        self.databases: list[str] = []

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{database}"

    def start(self) -> TestPostgres:
        # FIELDKIT_TEST_PG_PRIVATE=1 forces a private cluster (what a fresh machine does).
        if os.environ.get("FIELDKIT_TEST_PG_PRIVATE") or not self._local_answers():
            self._start_private()
        self.create_database(self.database)
        return self

    def _local_answers(self) -> bool:
        if not port_open(self.host, self.port):
            return False
        try:
            _admin_connect(self.host, self.port).close()
            return True
        except Exception:
            return False

    def create_database(self, name: str) -> str:
        with _admin_connect(self.host, self.port) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        with _admin_connect(self.host, self.port) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _cmd(self, *args: str) -> list[str]:
        return [*self._run_as, *args]

    def _start_private(self) -> None:
        initdb, pg_ctl = find_pg_bin("initdb"), find_pg_bin("pg_ctl")
        if not initdb or not pg_ctl:
            raise PostgresUnavailable("no PostgreSQL answers on 127.0.0.1:5432 and initdb is not installed "
                                      "(`make test` installs it: apt-get install postgresql)")
        self.cluster_dir = Path(tempfile.mkdtemp(prefix="fk-pg-"))
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(PG_USER)
            except KeyError:
                subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
                               check=True, capture_output=True)
            shutil.chown(self.cluster_dir, PG_USER, PG_USER)
            self._run_as = ["runuser", "-u", PG_USER, "--"]
        self.port = free_port()
        data = self.cluster_dir / "data"
        subprocess.run(self._cmd(initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"),
                       check=True, capture_output=True, cwd=self.cluster_dir)
        opts = f"-p {self.port} -h 127.0.0.1 -k {self.cluster_dir} -F -c max_connections=200"
        subprocess.run(self._cmd(pg_ctl, "-D", str(data), "-o", opts, "-l", str(self.cluster_dir / "pg.log"), "-w",
                                 "-t", "60", "start"), check=True, capture_output=True, cwd=self.cluster_dir)
        deadline = time.monotonic() + 30
        while not self._local_answers():
            if time.monotonic() > deadline:
                raise PostgresUnavailable(f"private PostgreSQL did not start; see {self.cluster_dir / 'pg.log'}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.cluster_dir is None:
            for name in self.databases:
                try:
                    self.drop_database(name)
                except Exception:
                    pass
            return
        pg_ctl = find_pg_bin("pg_ctl")
        subprocess.run(self._cmd(pg_ctl, "-D", str(self.cluster_dir / "data"), "-m", "immediate", "-w", "stop"),
                       capture_output=True, cwd=self.cluster_dir)
        shutil.rmtree(self.cluster_dir, ignore_errors=True)
        self.cluster_dir = None


class HQServer:
    """HQ's real app under waitress on a free loopback port, in this process (tests, benchmarks)."""

    def __init__(self, engine, port: int | None = None, threads: int = 4, **app_options) -> None:
        import threading

        import waitress

        from sync.hq.app import create_app
        from sync.hq.store import create_schema

        create_schema(engine)
        self.engine = engine
        self.port = port or free_port()
        self.app = create_app(engine, **app_options)
        self.server = waitress.create_server(self.app, host="127.0.0.1", port=self.port,
                                             threads=threads, ident="fieldkit-hq-test",
                                             clear_untrusted_proxy_headers=False)  # HQ decides (hq.trusted_proxies)
        self._stopping = False
        self.thread = threading.Thread(target=self._run, name=f"hq-{self.port}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.server.run()
        except (OSError, ValueError):
            if not self._stopping:  # closing the sockets under the loop ends it with EBADF
                raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Close every socket from inside waitress's own loop, so the loop ends by itself at once."""
        self._stopping = True

        def close_all() -> None:
            for channel in list(self.server._map.values()):
                channel.close()

        try:
            try:
                self.server.trigger.pull_trigger(close_all)
            except OSError:
                # The trigger pipe is already gone (its loop ended, or an fd number was closed twice
                # elsewhere in this process): close from here; the loop, if alive, ends on EBADF.
                close_all()
            self.thread.join(timeout=5)
        finally:
            self.server.task_dispatcher.shutdown(timeout=5)
