"""The fleet view at HQ: kits report their live state with every sync; an organiser sees every kit."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import pytest

from kit import __version__
from kit.testing import wait_for
from sync.agent import SyncAgent
from sync.client import HQClient
from sync.fleet_status import machine
from sync.hq import store
from sync.hq.testing import HQServer
from tests.sync.conftest import append_events
from tests.sync.test_cli import invoke
from tests.sync.test_hq_integrity import chained


def _post(url: str, token: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _update_event(kit: str, seq: int, prev_records: list[dict], payload: dict) -> list[dict]:
    """The kit's records 1..seq-1 plus an update outcome at seq, chained as a kit's ledger links them."""
    from kit.ledger import _chain_hash, canonical_json

    rec = {
        "id": f"{kit}-{seq}",
        "kit": kit,
        "seq": seq,
        "type": "update.outcome",
        "payload": payload,
        "hlc": seq << 16,
        "wall_time": "2026-11-21T09:00:00.000+00:00",
        "clock_synced": True,
    }
    rec["hash"] = _chain_hash(
        prev_records[-1]["hash"],
        seq,
        rec["id"],
        kit,
        rec["type"],
        canonical_json(payload),
        rec["hlc"],
        rec["wall_time"],
        1,
    )
    return [*prev_records, rec]


def test_the_fleet_shows_each_kit_with_its_version_outcome_backlog_battery_and_clock(
    ctx, joined, hq, hq_url_db, listen
):
    # A kit run by the real agent: it records an update that rolled back, then syncs.
    append_events(ctx.db, ctx.ledger, 30)
    with ctx.db.transaction() as conn:
        ctx.ledger.append(
            conn,
            "update.outcome",
            {
                "outcome": "rolled_back",
                "from_version": "0.1.0",
                "to_version": "0.2.0",
                "reason": "the pos service did not start",
            },
        )
    ctx.bus.publish(
        f"fieldkit/{ctx.config.kit_id}/power/state", {"battery": {"soc": 64.0}}, retain=True, qos=1
    )
    # No lead service runs here: clear the lead state an earlier test's kit of this id may have left
    # retained on this worker's broker (it would report 0 open incidents, not "unknown").
    ctx.bus.publish(f"fieldkit/{ctx.config.kit_id}/lead/state", "", retain=True, qos=1)
    agent = SyncAgent(joined, ctx.db, ctx.bus)
    wait_for(lambda: agent.live.battery_percent == 64.0, 5, what="the power state on the bus")
    assert agent.run_session().stored == 31

    # A second kit at another site, on another version, whose update applied (through the HQ client).
    token = store.add_kit(hq.engine, "bar2", "harbour")
    client = HQClient(hq.url, token, "bar2")
    records = _update_event(
        "bar2", 6, chained("bar2", 5), {"outcome": "applied", "from_version": "0.1.0", "to_version": "0.2.0"}
    )
    assert client.upload([client_line(r) for r in records]).hwm == 6
    assert (
        client.post_status(
            {
                "version": "0.2.0",
                "arch": "aarch64",
                "battery_percent": None,
                "backlog": 12,
                "lag_seconds": 340,
                "mirror": None,
                "clock_trusted": False,
                "open_incidents": None,
            }
        )
        is None
    )
    client.close()
    store.add_kit(hq.engine, "spare9", "harbour")  # registered, never reported

    listed = json.loads(invoke("hq", "kits", "list", "--json", "--db", hq_url_db).output)
    kits = {k["kit"]: k for k in listed}
    assert set(kits) == {"test1", "bar2", "spare9"}
    door = kits["test1"]
    assert (door["site"], door["version"], door["arch"], door["battery_percent"]) == (
        "testsite",
        __version__,
        machine(),
        64.0,
    )
    assert door["backlog"] == 0 and door["lag_seconds"] == 0 and door["clock_trusted"] is True
    assert door["update"]["text"] == "rolled back 0.1.0 -> 0.2.0: the pos service did not start"
    assert (
        door["events"] == 31
        and door["chain_ok"]
        and door["mirror"] == "none"  # this kit has no site mirror, and says so
        and door["open_incidents"] is None  # no lead service runs here: unknown, not zero
    )
    assert door["seen_seconds_ago"] is not None and door["seen_seconds_ago"] < 60
    bar = kits["bar2"]
    assert (bar["version"], bar["backlog"], bar["lag_seconds"], bar["clock_trusted"]) == (
        "0.2.0",
        12,
        340,
        False,
    )
    assert bar["update"]["text"] == "applied 0.1.0 -> 0.2.0"
    assert kits["spare9"]["last_seen"] is None and kits["spare9"]["version"] is None

    text = invoke("hq", "kits", "list", "--db", hq_url_db).output
    assert "version 0.2.0" in text and "backlog 12 (lag 5 min)" in text and "clock NOT TRUSTED" in text
    assert "update rolled back 0.1.0 -> 0.2.0" in text and "battery 64 %" in text and "seen never" in text

    # The organiser's page shows the same, and needs the admin token.
    admin = store.add_admin(hq.engine, "alice")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(hq.url + "/fleet", timeout=10)
    assert refused.value.code == 401
    auth = "Basic " + base64.b64encode(f"alice:{admin}".encode()).decode()
    with urllib.request.urlopen(
        urllib.request.Request(hq.url + "/fleet", headers={"Authorization": auth}), timeout=10
    ) as r:
        page = r.read().decode()
    assert "3 kits, 2 reported; versions: 0.1.0, 0.2.0" in page
    assert "rolled back 0.1.0 -&gt; 0.2.0" in page and "NOT TRUSTED" in page and "64 %" in page


def client_line(record: dict):
    from sync.client import Outgoing

    return Outgoing(record["seq"], record["id"], json.dumps(record))


HOSTILE = [
    (b"not json", "not JSON"),
    (b"[1, 2]", "JSON object"),
    (
        json.dumps(
            {"version": "0.1.0", "arch": "x86_64", "backlog": 0, "clock_trusted": True, "admin": True}
        ).encode(),
        "unknown field 'admin'",
    ),
    (
        json.dumps(
            {"version": "0.1.0\u0000", "arch": "x86_64", "backlog": 0, "clock_trusted": True}
        ).encode(),
        "'version'",
    ),
    (
        json.dumps({"version": "<script>", "arch": "x86_64", "backlog": 0, "clock_trusted": True}).encode(),
        "'version'",
    ),
    (
        json.dumps({"version": "0.1.0", "arch": "x86_64", "backlog": -1, "clock_trusted": True}).encode(),
        "'backlog'",
    ),
    (
        json.dumps({"version": "0.1.0", "arch": "x86_64", "backlog": 2**70, "clock_trusted": True}).encode(),
        "'backlog'",
    ),
    (
        json.dumps({"version": "0.1.0", "arch": "x86_64", "backlog": True, "clock_trusted": True}).encode(),
        "'backlog'",
    ),
    (
        json.dumps({"version": "0.1.0", "arch": "x86_64", "backlog": 0, "clock_trusted": "yes"}).encode(),
        "'clock_trusted'",
    ),
    (
        b'{"version": "0.1.0", "arch": "x86_64", "backlog": 0, "clock_trusted": true, "battery_percent": NaN}',
        "'battery_percent'",
    ),
    (
        json.dumps(
            {
                "version": "0.1.0",
                "arch": "x86_64",
                "backlog": 0,
                "clock_trusted": True,
                "battery_percent": 250,
            }
        ).encode(),
        "'battery_percent'",
    ),
    (
        json.dumps(
            {"version": "0.1.0", "arch": "x86_64", "backlog": 0, "clock_trusted": True, "mirror": {"a": 1}}
        ).encode(),
        "'mirror'",
    ),
    (b"[" * 4000, "not JSON"),  # nested too deep for the parser
    (
        json.dumps({"version": "0.1.0", "arch": "x" * 5000, "backlog": 0, "clock_trusted": True}).encode(),
        "limit is 4096",
    ),
]


def test_hostile_status_posts_are_refused_and_the_last_good_one_stays(hq):
    token = store.add_kit(hq.engine, "door1", "market")
    url = hq.url + "/api/v1/kits/door1/status"
    good = {
        "version": "0.1.0",
        "arch": "x86_64",
        "backlog": 3,
        "lag_seconds": 10,
        "clock_trusted": True,
        "battery_percent": 80,
    }
    assert _post(url, token, json.dumps(good).encode()) == (200, {"ok": True, "offer": None})
    for body, reason in HOSTILE:
        status, answer = _post(url, token, body)
        assert status in (400, 413), (body[:60], answer)
        assert reason in answer["error"], (body[:60], answer)
    other = store.add_kit(hq.engine, "door2", "market")  # a token only speaks for its own kit
    assert _post(url, other, json.dumps(good).encode())[0] == 401
    door1 = next(k for k in invoke_fleet(hq) if k["kit"] == "door1")
    assert (door1["version"], door1["backlog"], door1["battery_percent"]) == ("0.1.0", 3, 80.0)


def invoke_fleet(hq: HQServer) -> list[dict]:
    from sync.hq.fleet import fleet

    return fleet(hq.engine)
