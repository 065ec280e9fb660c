"""Release bundles from HQ: stored as files, served in byte ranges only to a site in the rollout, and
downloaded by the agent in resumable ranges, verified, renamed into place and announced."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import urllib.error
import urllib.request

import pytest

from kit.testing import wait_for
from sync import bundle_download
from sync.agent import SyncAgent
from sync.client import HQClient, SyncError
from sync.fleet_status import machine
from sync.hq import bundles, store
from sync.hq.testing import HQServer
from tests.sync.test_cli import invoke

SIZE = 5 * 1024 * 1024 + 123  # not a multiple of any range size


@pytest.fixture
def bundle_hq(hq_engine, tmp_path):
    server = HQServer(hq_engine, bundle_dir=str(tmp_path / "hq-bundles"))
    yield server
    server.stop()


@pytest.fixture
def bundle_file(tmp_path):
    path = tmp_path / "fieldkit-0.2.0.fkb"
    path.write_bytes(os.urandom(SIZE))
    return path


def _get(url: str, token: str, range_: str | None = None) -> tuple[int, dict, bytes]:
    headers = {"Authorization": f"Bearer {token}", **({"Range": range_} if range_ else {})}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def test_ranges_are_served_206_and_bad_ones_416_only_to_a_site_in_the_rollout(
    bundle_hq, bundle_file, hq_url_db, kit_env
):
    data = bundle_file.read_bytes()
    hq = bundle_hq
    added = invoke(
        "hq",
        "bundles",
        "add",
        str(bundle_file),
        "--version",
        "0.2.0",
        "--arch",
        "aarch64",
        "--db",
        hq_url_db,
        env={"FIELDKIT_HQ_BUNDLE_DIR": hq_bundle_dir(hq)},
    )
    assert added.exit_code == 0, added.output
    assert hashlib.sha256(data).hexdigest() in added.output
    on_disk = list((hq_bundle_dir_path(hq)).glob("*.fkb"))
    assert [p.read_bytes() == data for p in on_disk] == [True]  # a file, not a database row
    market = store.add_kit(hq.engine, "door1", "market")
    harbour = store.add_kit(hq.engine, "bar2", "harbour")
    url = hq.url + "/api/v1/kits/{}/bundles/0.2.0/aarch64"
    assert _get(url.format("door1"), market)[0] == 404  # no rollout yet
    assert invoke("hq", "rollout", "start", "0.2.0", "--site", "market", "--db", hq_url_db).exit_code == 0

    status, headers, body = _get(url.format("door1"), market, "bytes=1000-1999")
    assert (status, headers["content-range"], body) == (206, f"bytes 1000-1999/{SIZE}", data[1000:2000])
    status, headers, body = _get(url.format("door1"), market, "bytes=-100")
    assert (status, headers["content-range"], body) == (
        206,
        f"bytes {SIZE - 100}-{SIZE - 1}/{SIZE}",
        data[-100:],
    )
    status, headers, body = _get(url.format("door1"), market, f"bytes={SIZE - 10}-{SIZE + 5000}")
    assert (status, headers["content-range"], body) == (
        206,
        f"bytes {SIZE - 10}-{SIZE - 1}/{SIZE}",
        data[-10:],
    )
    status, headers, body = _get(url.format("door1"), market)
    assert (status, headers["accept-ranges"], body == data) == (200, "bytes", True)
    for bad in (
        f"bytes={SIZE}-",
        "bytes=500-100",
        "bytes=0-10,20-30",
        "bytes=abc",
        "items=0-10",
        "bytes=-0",
        "bytes=-",
    ):
        status, headers, body = _get(url.format("door1"), market, bad)
        assert (status, headers.get("content-range")) == (416, f"bytes */{SIZE}"), bad
        assert "byte range" in json.loads(body)["error"]

    assert _get(url.format("bar2"), harbour, "bytes=0-9")[0] == 404  # its site is not in the rollout
    assert _get(url.format("door1"), harbour, "bytes=0-9")[0] == 401  # another kit's token
    assert _get(hq.url + "/api/v1/kits/door1/bundles/0.2.0/x86_64", market, "bytes=0-9")[0] == 404

    stopped = invoke("hq", "rollout", "stop", "0.2.0", "--db", hq_url_db)
    assert "stopped for 1 site(s)" in stopped.output
    assert _get(url.format("door1"), market, "bytes=0-9")[0] == 404
    assert "stopped" in invoke("hq", "rollout", "list", "--db", hq_url_db).output


def hq_bundle_dir(hq) -> str:
    return str(hq_bundle_dir_path(hq))


def hq_bundle_dir_path(hq):
    from pathlib import Path

    return Path(hq.app.config["HQ_BUNDLE_DIR"])


def _status(version="0.1.0") -> dict:
    return {"version": version, "arch": machine(), "backlog": 0, "lag_seconds": 0, "clock_trusted": True}


def test_the_rollout_offers_a_newer_bundle_to_one_site_until_stopped(bundle_hq, bundle_file):
    hq = bundle_hq
    bundles.add_bundle(hq.engine, hq_bundle_dir_path(hq), bundle_file, "0.2.0", machine())
    bundles.add_bundle(hq.engine, hq_bundle_dir_path(hq), bundle_file, "0.2.0", "armv6l")
    clients = {
        kit: HQClient(hq.url, store.add_kit(hq.engine, kit, site), kit)
        for kit, site in (("door1", "market"), ("bar2", "harbour"))
    }
    assert clients["door1"].post_status(_status()) is None
    bundles.start_rollout(hq.engine, "0.2.0", "market")
    offer = clients["door1"].post_status(_status())
    assert {k: offer[k] for k in ("version", "arch", "size")} == {
        "version": "0.2.0",
        "arch": machine(),
        "size": SIZE,
    }
    assert offer["sha256"] == hashlib.sha256(bundle_file.read_bytes()).hexdigest()
    assert clients["bar2"].post_status(_status()) is None  # another site
    assert clients["door1"].post_status(_status("0.2.0")) is None  # already runs it
    assert clients["door1"].post_status(_status("0.10.0")) is None  # newer than what is offered
    bundles.stop_rollout(hq.engine, "0.2.0")
    assert clients["door1"].post_status(_status()) is None
    with pytest.raises(Exception, match="must look like"):
        bundles.add_bundle(hq.engine, hq_bundle_dir_path(hq), bundle_file, "../../etc", machine())
    for c in clients.values():
        c.close()


def test_an_interrupted_download_resumes_from_what_is_on_disk_verifies_and_is_announced(
    ctx, config, bundle_hq, bundle_file, listen, caplog, monkeypatch
):
    from sync.credentials import join

    hq = bundle_hq
    bundles.add_bundle(hq.engine, hq_bundle_dir_path(hq), bundle_file, "0.2.0", machine())
    bundles.start_rollout(hq.engine, "0.2.0", config.site)
    joined = join(config, hq.url, store.add_kit(hq.engine, config.kit_id, config.site))
    monkeypatch.setattr(bundle_download, "RANGE_BYTES", 1024 * 1024)
    incoming = listen(f"fieldkit/{config.kit_id}/update/event/incoming")

    # The first session is cut off after two ranges (the service stopping; a cut link raises the same way).
    agent = SyncAgent(joined, ctx.db, ctx.bus)
    ranges = []
    real_fetch = HQClient.fetch_range

    def counting(self, path, first, last, sink, piece=64 * 1024):
        ranges.append(first)
        return real_fetch(self, path, first, last, sink, piece)

    monkeypatch.setattr(HQClient, "fetch_range", counting)
    with pytest.raises(SyncError, match="stopped during the update download"):
        agent.run_session(stop=lambda: len(ranges) >= 2)
    part = config.data_dir / "updates" / "partial" / f"fieldkit-0.2.0-{machine()}.part"
    assert part.stat().st_size == 2 * 1024 * 1024
    assert not list((config.data_dir / "updates" / "incoming").iterdir())  # nothing half-done is visible

    ranges.clear()
    caplog.set_level(logging.INFO, "fieldkit.sync.bundle")
    result = agent.run_session()
    assert ranges[0] == 2 * 1024 * 1024 and len(ranges) == 4  # carried on: 3 MiB and the 123 bytes left
    target = config.data_dir / "updates" / "incoming" / f"fieldkit-0.2.0-{machine()}.fkb"
    assert result.bundle == {"path": str(target), "version": "0.2.0"}
    assert target.read_bytes() == bundle_file.read_bytes() and not part.exists()
    wait_for(
        lambda: incoming.on(f"fieldkit/{config.kit_id}/update/event/incoming"), 5, what="the announcement"
    )
    assert incoming.on(f"fieldkit/{config.kit_id}/update/event/incoming")[0] == result.bundle
    assert "event=bundle_resume version=0.2.0 from=2097152" in caplog.text
    assert agent.run_session().bundle is None  # handed over once, not downloaded again


def test_a_bundle_damaged_at_hq_is_refused_and_never_reaches_the_updater(ctx, config, bundle_hq, bundle_file):
    from sync.credentials import join

    hq = bundle_hq
    row = bundles.add_bundle(hq.engine, hq_bundle_dir_path(hq), bundle_file, "0.2.0", machine())
    bundles.start_rollout(hq.engine, "0.2.0", config.site)
    stored = hq_bundle_dir_path(hq) / row["filename"]
    damaged = bytearray(stored.read_bytes())
    damaged[SIZE // 2] ^= 0xFF  # same size, one byte flipped
    stored.write_bytes(bytes(damaged))
    joined = join(config, hq.url, store.add_kit(hq.engine, config.kit_id, config.site))
    with pytest.raises(SyncError, match="arrived damaged"):
        SyncAgent(joined, ctx.db).run_session()
    updates = config.data_dir / "updates"
    assert not list((updates / "incoming").iterdir()) and not list((updates / "partial").glob("*.part"))
