"""A scripted evening on one simulated kit (`fieldkit up --simulate`: web, door, merch, cues, run-sheet).

The run-sheet runs three slots and the cue sheet reacts to each; slot two opens a members-first drop:
a VIP ticket unlocks its price once, a day pass is refused in that phase, then everyone buys, the
drop sells out and the price reverts. At the end ``fieldkit metrics --json`` is checked against the
numbers worked out by hand from what the script did (and kept in build/ for the closing note).
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import sqlite3
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from kit.testing import wait_for

pytestmark = pytest.mark.slow
MEMBERS_SECONDS = 9

CUES = """\
[sheet]
name = "Scripted evening"

[[cues]]
name = "slot-bell"
list = false
[[cues.triggers]]
kind = "slot"
when = "start"
[[cues.actions]]
kind = "publish"
topic = "cues/event/scripted"
payload = { bell = true }

[[cues]]
name = "drop-fanfare"
list = false
[[cues.triggers]]
kind = "drop"
when = "started"
[[cues.actions]]
kind = "publish"
topic = "cues/event/scripted"
payload = { fanfare = true }

[[cues]]
name = "sold-out-flash"
list = false
[[cues.triggers]]
kind = "drop"
when = "sold_out"
[[cues.actions]]
kind = "publish"
topic = "cues/event/scripted"
payload = { flash = true }
"""


def runsheet(tz: ZoneInfo, start: float) -> str:
    at = lambda s: datetime.fromtimestamp(s, tz).isoformat(timespec="seconds")  # noqa: E731
    return f"""\
name = "Scripted evening"
date = "{datetime.fromtimestamp(start, tz):%Y-%m-%d}"
[[slot]]
name = "Poetry bench"
start = "{at(start)}"
minutes = 20
stage = "Bench"
[[slot]]
name = "Hoodie reveal"
start = "{at(start + 20 * 60)}"
minutes = 20
stage = "Bench"
[slot.drop]
name = "Hoodie drop"
sku = "HOODIE-L"
price = "30.00"
quantity = 2
minutes = 15
members_minutes = {MEMBERS_SECONDS / 60:.4f}
member_types = ["VIP"]
[[slot]]
name = "Open mic"
start = "{at(start + 40 * 60)}"
minutes = 20
stage = "Bench"
"""


class Staff:
    """One signed-in browser-like session on the kit's HTTP API (cookies, CSRF token)."""

    def __init__(self, url: str, pin: str):
        self.url = url
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.csrf = self._token("login")
        self.opener.open(urllib.request.Request(url + "login", data=f"pin={pin}&csrf_token={self.csrf}".encode(),
                                                headers={"Content-Type": "application/x-www-form-urlencoded"}), timeout=10)
        self.csrf = self._token("")

    def _token(self, path: str) -> str:
        page = self.opener.open(self.url + path, timeout=10).read().decode()
        return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        req = urllib.request.Request(self.url + path.lstrip("/"), method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", "X-CSRF-Token": self.csrf})
        try:
            with self.opener.open(req, timeout=15) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")


def tickets(kit, ticket_type: str, n: int) -> list[str]:
    conn = sqlite3.connect(kit.home / "var" / "kit.db")
    try:
        return [r[0] for r in conn.execute(
            "SELECT ticket_key FROM checkin_tickets WHERE ticket_type = ? AND status = 'valid' AND attention = 0"
            " AND valid_from IS NULL ORDER BY ticket_key LIMIT ?", (ticket_type, n))]
    finally:
        conn.close()


def fired(kit) -> list[tuple[str, str]]:
    """(cue, reason) of every cue the cue service fired: its ledger events."""
    conn = sqlite3.connect(kit.home / "var" / "kit.db")
    try:
        from kit.event_codec import unpack

        rows = conn.execute("SELECT payload FROM events WHERE type = 'cues.fired' ORDER BY seq").fetchall()
        return [(p["cue"], p["reason"]) for p in (json.loads(unpack(r[0])) for r in rows)]
    finally:
        conn.close()


def sale(merch: Staff, sku: str, qty: int = 1, unlocks: list[str] | None = None) -> list[tuple[int, int]]:
    status, body = merch.call("POST", "api/v1/pos/sales", {"items": [{"sku": sku, "qty": qty}], "unlocks": unlocks or [],
                                                           "payments": [{"method": "cash", "amount": "200.00"}]})
    assert status in (200, 201), body
    return [(ln["qty"], ln["unit_cents"]) for ln in body["sale"]["lines"]]


def drop(merch: Staff) -> dict:
    _, body = merch.call("GET", "api/v1/pos/drops")
    return next((d for d in body["drops"] if d["name"] == "Hoodie drop"), {})


def test_a_scripted_evening_runs_its_slots_cues_and_members_first_drop_and_the_numbers_add_up(kit_factory, tmp_path):
    kit = kit_factory(["web", "status", "checkin", "pos", "cues", "lead"])
    from kit.config import load_config

    tz = load_config(kit.env).tz
    (tmp_path / "cues.toml").write_text(CUES)
    (tmp_path / "tonight.toml").write_text(runsheet(tz, time.time() - 5))
    kit.fieldkit("documents", "import", "cues.sheet", str(tmp_path / "cues.toml"))
    # The cue service picks a new sheet up within a second; the run-sheet goes in once it has, as a lead
    # who loads both before the doors open would see it (a sheet loaded after a slot began cannot ring it in).
    wait_for(lambda: "event=cue_sheet_loaded" in kit.log_path.read_text(), 30, what="the cue service loads the sheet")
    kit.fieldkit("runsheet", "import", str(tmp_path / "tonight.toml"))
    door, merch = Staff(kit.url, kit.pins["door"]), Staff(kit.url, kit.pins["merch"])
    wait_for(lambda: ("slot-bell", "slot:start") in fired(kit), 20, what="the cue sheet rings slot one in")

    # Slot one: four day passes come in, one sticker sold.
    day, vip = tickets(kit, "Day pass", 6), tickets(kit, "VIP", 2)
    for code in day[:4]:
        status, body = door.call("POST", "api/v1/checkin/scan", {"payload": code})
        assert status == 200 and body["verdict"] == "admit", body
    assert sale(merch, "STICKER") == [(1, 200)]

    # Slot two opens the members-first drop (the run-sheet says so; pos opens it when the slot starts).
    assert "now: Hoodie reveal" in kit.fieldkit("runsheet", "next").stdout
    wait_for(lambda: drop(merch).get("phase") == "members", 20, what="slot two opens the hoodie drop, members first")
    for code in (vip[0], day[4]):
        status, body = door.call("POST", "api/v1/checkin/scan", {"payload": code})
        assert status == 200 and body["verdict"] == "admit", body
    status, body = merch.call("POST", "api/v1/pos/drops/Hoodie%20drop/unlock", {"code": day[0]})
    assert status == 409 and "a Day pass ticket does not unlock Hoodie drop" in body["error"]
    status, unlocked = merch.call("POST", "api/v1/pos/drops/Hoodie%20drop/unlock", {"code": vip[0]})
    assert status == 200, unlocked
    assert sale(merch, "HOODIE-L", unlocks=[unlocked["unlock_id"]]) == [(1, 3000)]  # the VIP's unit, at the drop price
    status, body = merch.call("POST", "api/v1/pos/drops/Hoodie%20drop/unlock", {"code": vip[0]})
    assert status == 409 and "already unlocked" in body["error"]  # once per ticket
    assert sale(merch, "HOODIE-L") == [(1, 4500)]  # no member ticket: the normal price in the members' phase
    wait_for(lambda: drop(merch).get("phase") == "open", MEMBERS_SECONDS + 10, what="the drop opens to everyone")
    assert sale(merch, "HOODIE-L", qty=2) == [(1, 3000), (1, 4500)]  # the last drop unit, then the normal price
    assert drop(merch)["phase"] == "sold_out" and sale(merch, "HOODIE-L") == [(1, 4500)]  # the price reverted

    # Slot three: one tote; then the programme is over.
    assert "now: Open mic" in kit.fieldkit("runsheet", "next").stdout
    assert sale(merch, "TOTE") == [(1, 800)]
    wait_for(lambda: [r for c, r in fired(kit) if c == "slot-bell"] == ["slot:start"] * 3, 20,
             what="the cue sheet rings in all three slots")
    wait_for(lambda: ("sold-out-flash", "drop:sold_out") in fired(kit), 20, what="the sold-out cue")
    assert ("drop-fanfare", "drop:started") in fired(kit)

    metrics = kit.fieldkit("metrics", "--json").stdout
    out = Path(__file__).parents[2] / "build" / "scripted-evening-metrics.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(metrics)
    n = json.loads(metrics)
    a, c = n["attendance"], n["conversion"]
    # Worked out by hand: 6 admitted of the demo list's 300 tickets; 6 sales (1 sticker, 4 hoodie sales, 1 tote),
    # 2 of them with drop units (the VIP's, and the one that took the last unit).
    assert (a["admitted"], a["tickets_sold"], a["attendance_percent"]) == (6, 300, 2.0)
    assert (c["sales"], c["sales_per_100"], c["drop_sales"], c["drop_sales_per_100"]) == (6, 100.0, 2, 33.3)
    assert n["go_live"]["minutes_to_first_sale"] is not None and n["go_live"]["minutes_to_first_sale"] < 2
    [d] = n["drops"]
    assert (d["name"], d["quantity"], d["sold"], d["sell_through_percent"], d["oversold"], d["member_unlocks"]) == (
        "Hoodie drop", 2, 2, 100.0, 0, 1)
    slots = [(s["name"], s["people_in"], s["buyers"]) for s in n["slots"]]
    # people inside at the most during each slot; sales during it. The demo's own run-sheet had begun
    # its first slot before this one replaced it: that slot ended when Poetry bench began.
    assert slots == [("Walk-in beats", 0, 0), ("Poetry bench", 4, 1), ("Hoodie reveal", 6, 4), ("Open mic", 6, 1)]
    assert max(slots, key=lambda s: s[2])[0] == "Hoodie reveal"  # the slot that converted
