"""HQ's retention of personal data: each site's rule, erased from HQ's tables and from the file's bytes."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

import sqlalchemy as sa

from sync.hq import schema, store
from sync.hq.personal import store_personal
from sync.hq.retention import erase, set_rule, status


def _records(engine, kit: str, emails: list[str]) -> None:
    store_personal(
        engine,
        kit,
        [{"id": f"{kit}-{i:08d}", "kind": "lead.signup", "body": {"email": e}} for i, e in enumerate(emails)],
    )


def test_each_site_keeps_personal_records_until_its_own_rule_and_the_bytes_go(tmp_path, kit_env):
    path = tmp_path / "hq.db"
    engine = store.make_engine(f"sqlite:///{path}")
    store.create_schema(engine)
    store.add_kit(engine, "door1", "market")
    store.add_kit(engine, "door2", "harbour")
    _records(engine, "door1", ["mira.quendlewood@hq-test.example", "otto.brasselfinch@hq-test.example"])
    _records(engine, "door2", ["tove.harrowgaskin@hq-test.example"])
    now = store.now_utc()
    set_rule(engine, "market", erase_after=now + timedelta(days=1))
    assert {r["site"]: (r["held"], r["due"]) for r in status(engine, 90, now)} == {
        "market": (2, 0),
        "harbour": (1, 0),
    }
    assert (
        erase(engine, 90, now=now) == {}
    )  # nothing due yet: market's date is tomorrow, harbour keeps 90 days
    assert erase(engine, 90, now=now + timedelta(days=2)) == {"market": 2}
    engine.dispose()
    data = path.read_bytes() + (
        path.with_name("hq.db-wal").read_bytes() if path.with_name("hq.db-wal").exists() else b""
    )
    assert b"quendlewood" not in data and b"brasselfinch" not in data and b"harrowgaskin" in data
    engine = store.make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        erasures = conn.execute(
            sa.select(schema.privacy_erasures.c.site, schema.privacy_erasures.c.records)
        ).all()
    assert [tuple(r) for r in erasures] == [("market", 2)]
    # The command line: refused without a site for --now, then erases harbour's record at once.
    url = f"sqlite:///{path}"
    cmd = [sys.executable, "-m", "kit", "hq", "privacy"]

    def run(*a):
        return subprocess.run(
            [*cmd, *a, "--db", url],
            env=kit_env["env"],
            capture_output=True,
            text=True,
            timeout=120,
        )

    refused = run("erase", "--now")
    assert refused.returncode == 1 and "name it with --site" in refused.stderr
    assert run("set", "nowhere", "--keep-days", "3").returncode == 1
    done = run("erase", "--site", "harbour", "--now")
    assert done.returncode == 0 and "site harbour: erased 1 personal records" in done.stdout
    shown = json.loads(run("status", "--json").stdout)
    assert {r["site"]: r["held"] for r in shown} == {"market": 0, "harbour": 0}
    engine.dispose()
    assert b"harrowgaskin" not in path.read_bytes()


def test_on_postgresql_the_due_records_go_and_the_table_is_rewritten():
    """VACUUM FULL runs outside a transaction (PostgreSQL refuses it inside one): the erasure would fail."""
    import secrets

    from sync.hq.testing import TestPostgres

    pg = TestPostgres().start()
    try:
        engine = store.make_engine(pg.create_database(f"fk_retention_{secrets.token_hex(4)}"))
        store.create_schema(engine)
        store.add_kit(engine, "door1", "market")
        _records(engine, "door1", ["mira.quendlewood@hq-test.example"])
        set_rule(engine, "market", keep_days=0)
        assert erase(engine, 90, now=store.now_utc() + timedelta(seconds=1)) == {"market": 1}
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(schema.personal_records)).scalar() == 0
        assert status(engine, 90)[0]["last_erasure"]["records"] == 1
        engine.dispose()
    finally:
        pg.stop()
