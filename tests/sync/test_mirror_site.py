"""A site of three kits, each its own Mosquitto bridged to the hub's, each a real `fieldkit up` process.

Kits sell and admit over HTTP; one is killed with SIGKILL and its data directory deleted mid-stream: every sale
it knew mirrored is on the hub. A spare flashed with its id refuses to sell until restored from the hub,
then sells on with the next receipt number. A kit cut off from the hub sells; the mirror catches up
once the link heals.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kit.sitelink import bridge_conf
from kit.testing import Mosquitto, free_port, stop_process_group, wait_for
from tests.browser import conftest as screens
from tests.checkin.test_doors import LinkProxy
from tests.kit.test_service_groups import LIST_MODULES

pytestmark = pytest.mark.slow
SITE = "fair"
SALE = {"items": [{"sku": "STICKER", "qty": 1}], "payments": [{"method": "cash", "amount": "5.00"}]}


class Kit:
    """One kit: its own broker (bridged to the hub's through a cuttable link) and `fieldkit up`."""

    def __init__(self, root: Path, kit_id: str, hub_port: int | None, services: list[str], hub: bool = False):
        self.root, self.kit_id, self.services = root, kit_id, services
        (root / "broker").mkdir(parents=True, exist_ok=True)
        self.link = LinkProxy(hub_port) if hub_port else None
        conf = bridge_conf(SITE, kit_id, "127.0.0.1", self.link.port) if self.link else ""
        self.broker = Mosquitto(workdir=root / "broker", extra_conf=conf).start()
        self.port = free_port()
        self.env = {**os.environ, "FIELDKIT_HOME": str(root / "home"), "FIELDKIT_MQTT_PORT": str(self.broker.port),
                    "FIELDKIT_WEB_PORT": str(self.port), "FIELDKIT_WEB_HOST": "127.0.0.1",
                    "FIELDKIT_KIT_SIMULATE": "1", "FIELDKIT_KIT_CLOCK_ASSUME_SYNCED": "1",
                    "FIELDKIT_SITE_HUB": "1" if hub else "0", "FIELDKIT_SUPERVISOR_START_BROKER": "0"}
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc: subprocess.Popen | None = None
        self.pins: dict[str, str] = {}
        self.opener = None
        self.csrf = ""
        self.probe_marker: Path | None = None  # the site fixture's module probe, on the hub

    def fieldkit(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "kit", *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        assert not check or done.returncode == 0, done.stdout + done.stderr
        return done

    def init(self, demo: bool = True) -> Kit:
        out = self.fieldkit("init", "--kit-id", self.kit_id, "--site", SITE, *(["--demo"] if demo else [])).stdout
        self.pins = {p[0]: p[1] for p in (line.split() for line in out.splitlines())
                     if len(p) == 2 and p[0] in ("door", "merch", "lead")}
        return self

    def up(self) -> Kit:
        log = (self.root / "up.log").open("a")
        args = [sys.executable, "-m", "kit", "up", "--simulate"] + [a for s in self.services for a in ("--only", s)]
        self.proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self._healthy, 60, 0.3, what=f"kit {self.kit_id} healthy")
        self.opener = None
        return self

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "api/v1/health", timeout=2) as r:
                services = json.loads(r.read())["services"]
        except OSError:
            return False
        return all(services.get(s) == "ok" for s in self.services if s not in ("web", "status"))

    def sign_in(self, role: str = "merch") -> None:
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        page = self.opener.open(self.url + "login", timeout=5).read().decode()
        token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        form = f"pin={self.pins[role]}&csrf_token={token}".encode()
        self.opener.open(self.url + "login", data=form, timeout=5).read()
        page = self.opener.open(self.url + {"merch": "merch", "lead": "sync", "door": "door"}[role],
                                timeout=5).read().decode()
        self.csrf = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)

    def page(self, path: str) -> str:
        return self.opener.open(self.url + path, timeout=5).read().decode()

    def sell(self) -> tuple[int, dict]:
        if self.opener is None:
            self.sign_in()
        request = urllib.request.Request(self.url + "api/v1/pos/sales", data=json.dumps(SALE).encode(), method="POST",
                                         headers={"Content-Type": "application/json", "X-CSRF-Token": self.csrf})
        try:
            with self.opener.open(request, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def admit(self, n: int) -> list[str]:
        """Admit n demo guests at this kit's door (the door's scan API); their verdicts."""
        samples = json.loads((self.root / "home" / "var" / "checkin" / "demo-samples.json").read_text())
        self.sign_in("door")
        verdicts = []
        for payload in samples["valid"][:n]:
            request = urllib.request.Request(self.url + "api/v1/checkin/scan", method="POST",
                                             data=json.dumps({"payload": payload}).encode(),
                                             headers={"Content-Type": "application/json", "X-CSRF-Token": self.csrf})
            with self.opener.open(request, timeout=10) as r:
                verdicts.append(json.loads(r.read())["verdict"])
        self.opener = None  # the next sale signs in as merch again
        return verdicts

    def db(self, query: str, args: tuple = ()) -> list:
        conn = sqlite3.connect(self.root / "home" / "var" / "kit.db", timeout=10)
        try:
            return conn.execute(query, args).fetchall()
        finally:
            conn.close()

    def mirrored_upto(self) -> int:
        rows = self.db("SELECT MIN(upto) FROM sync_mirror_cursor")
        return rows[0][0] or 0

    def last_seq(self) -> int:
        return self.db("SELECT COALESCE(MAX(seq), 0) FROM events")[0][0]

    def stop(self) -> None:
        if self.proc:
            stop_process_group(self.proc)
            self.proc = None

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        self.broker.stop()
        if self.link:
            self.link.close()


def hub_holds(hub: Kit, kit_id: str) -> dict[int, str]:
    """seq -> receipt of the sales the hub's mirror holds of a kit."""
    path = hub.root / "home" / "var" / "mirror.db"
    if not path.exists():
        return {}
    conn = sqlite3.connect(path, timeout=10)
    try:
        rows = conn.execute("SELECT seq, type, payload FROM hq_events WHERE kit = ? ORDER BY seq", (kit_id,)).fetchall()
    except sqlite3.OperationalError:
        return {}
    finally:
        conn.close()
    return {seq: json.loads(p).get("receipt", type_) for seq, type_, p in rows}


@pytest.fixture
def site(tmp_path):
    kits: list[Kit] = []
    hub = Kit(tmp_path / "hub", "hub", None, ["web", "sync"], hub=True)
    # A probe in every process of the hub: once hub.probe_marker appears, each writes the packages it imported.
    (tmp_path / "probe-hook").mkdir()
    (tmp_path / "probe-hook" / "sitecustomize.py").write_text(LIST_MODULES)
    hub.probe_marker = tmp_path / "probe" / "now"
    hub.probe_marker.parent.mkdir()
    hub.env.update({"PYTHONPATH": os.pathsep.join([str(tmp_path / "probe-hook"), os.environ.get("PYTHONPATH", "")]),
                    "FIELDKIT_TEST_MODULES_MARKER": str(hub.probe_marker)})
    kits.append(hub)
    try:
        hub.init().up()
        for name in ("merchA", "merchB"):
            kits.append(Kit(tmp_path / name, name, hub.broker.port, ["web", "pos", "sync"]).init().up())
        yield kits
    finally:
        for k in kits:
            k.close()


def test_a_dead_kit_loses_no_mirrored_sale_and_a_spare_restored_from_the_hub_sells_on(site, tmp_path, browser):
    hub, a, b = site
    for k in (a, b):
        for _ in range(3):
            assert k.sell()[0] == 201
    assert b.admit(2) == ["admit", "admit"]  # and kit B's door admits two guests
    for k in (a, b):
        wait_for(lambda k=k: len(hub_holds(hub, k.kit_id)) == k.last_seq() and k.mirrored_upto() == k.last_seq(),
                 20, what=f"the hub mirrors {k.kit_id} and {k.kit_id} knows it")
    status = json.loads(a.fieldkit("mirror", "status", "--json").stdout)
    assert status["mirrors"] == [{**status["mirrors"][0], "mirror": "hub", "upto": a.last_seq(), "behind": 0}]

    # Kit A sells steadily; its SD card dies mid-stream (SIGKILL, data directory gone).
    receipts: list[tuple[float, str]] = []
    stop = threading.Event()

    def sell_on() -> None:
        while not stop.is_set():
            try:
                code, body = a.sell()
            except OSError:
                return
            if code == 201:
                receipts.append((time.monotonic(), body["receipt"]))
            time.sleep(0.3)

    seller = threading.Thread(target=sell_on, daemon=True)
    seller.start()
    wait_for(lambda: len(receipts) >= 8, 30, what="kit A selling")
    known = a.mirrored_upto()  # what kit A knew the hub held, an instant before it died
    a.kill()
    killed_at = time.monotonic()
    stop.set()
    seller.join(15)
    shutil.rmtree(a.root / "home" / "var")
    held = hub_holds(hub, "merchA")
    assert known >= 10 and all(seq in held for seq in range(1, known + 1))
    told = [r for t, r in receipts if t < killed_at - 2.0]  # every sale the mirror had 2 s to take
    assert told and set(told) <= set(held.values())
    top = max(held)

    # A spare flashed with kit A's id: it refuses to sell, on every screen, until restored.
    spare = Kit(tmp_path / "spare", "merchA", hub.broker.port, ["web", "pos", "sync"]).init(demo=False)
    spare.env["FIELDKIT_SITE_HUB_ADDRESS"] = "127.0.0.1"  # a kit of a site with a hub, as personalise.sh sets it
    site.append(spare)
    catalogue = Path(__file__).parents[2] / "pos" / "demo" / "catalogue.csv"
    spare.fieldkit("documents", "import", "pos.catalogue", str(catalogue))  # so only the hold can refuse a sale
    spare.up()
    code, body = spare.sell()  # at once, before the hub's acknowledgement can have arrived: still no sale
    assert code == 423 and spare.last_seq() == 0, body
    wait_for(lambda: "restore" in (spare.db("SELECT reason FROM kit_ledger_hold") or [("",)])[0][0], 20,
             what="the spare holds its ledger until restored")
    code, body = spare.sell()
    assert code == 423 and "restore" in body["error"] and spare.last_seq() == 0
    assert "Not recording" in spare.page("merch")
    spare.stop()
    out = spare.fieldkit("restore", "--from-hub").stdout
    assert f"Restored {top} events of kit merchA" in out and "the chain verifies" in out
    assert "document pos.catalogue" in out  # the dead kit's catalogue came back with its ledger
    assert spare.fieldkit("ledger", "verify").returncode == 0
    spare.up()
    spare.sign_in()
    code, body = spare.sell()
    numbers = [int(r.rsplit("-", 1)[1]) for r in held.values() if r.startswith("merchA-")]
    assert sorted(numbers) == list(range(1, max(numbers) + 1))  # the hub holds every receipt, no gap
    assert code == 201 and body["receipt"] == f"merchA-{max(numbers) + 1}"
    assert spare.last_seq() > top
    wait_for(lambda: max(hub_holds(hub, "merchA")) == spare.last_seq(), 20, what="the restored kit mirrored on")

    # Kit B cut off from the hub sells; the mirror catches up when the link heals.
    b.link.cut()
    before = b.last_seq()
    for _ in range(4):
        assert b.sell()[0] == 201
    time.sleep(2)
    assert max(hub_holds(hub, "merchB")) == before  # nothing crossed the cut
    b.link.heal()
    wait_for(lambda: max(hub_holds(hub, "merchB")) == b.last_seq() == b.mirrored_upto(), 60,
             what="the mirror catches up after the partition")

    # Close the night on site: the hub's lead page reconciles every kit from the mirror, no HQ anywhere.
    hub.sign_in("lead")
    sold = {k: sum(1 for r in hub_holds(hub, k).values() if r.startswith(k + "-")) for k in ("merchA", "merchB")}
    page = hub.page("sync/site")
    assert "merchA, merchB" in page
    for kit_id, n in sold.items():
        assert re.search(rf"<td>{kit_id}</td><td>STICKER</td><td>[^<]*</td><td>{n}</td>", page), (kit_id, n)
    assert re.search(rf"<td>all kits</td><td>STICKER</td><td>[^<]*</td><td>{sum(sold.values())}</td>", page)
    admitted = re.search(r'id="admissions_per_hour".*?</table>', page, re.S).group(0)
    assert sum(int(n) for n in re.findall(r"<td>(\d+)</td></tr>", admitted)) == 2  # kit B's door, on the hub
    # A child process built it: the hub's web process never loads SQLAlchemy nor keeps the night's events.
    hub.probe_marker.write_text("x")
    web_modules = hub.probe_marker.parent / "web.json"
    wait_for(web_modules.exists, 20, what="the hub's web process listed its packages")
    assert "sqlalchemy" not in json.loads(web_modules.read_text())

    # The lead reads it on the kit's own screen and on a phone: nothing scrolls sideways (wide tables scroll
    # inside their box), axe finds nothing serious. Screenshots: build/screenshots/sync-site-hub-*.png.
    for width, height in ((800, 480), (390, 844)):
        context = browser.new_context(viewport={"width": width, "height": height}, has_touch=width < 500)
        try:
            view = context.new_page()
            view.goto(hub.url + "login")
            view.fill("#pin", hub.pins["lead"])
            view.click("button[type=submit]")
            view.wait_for_load_state()
            view.goto(hub.url + "sync/site")
            view.wait_for_selector("#site-report-summary")
            view.screenshot(path=str(screens.screenshot_dir() / f"sync-site-hub-{width}x{height}.png"))
            assert "merchA, merchB" in view.inner_text("#site-report-kits")
            wide = screens.overflow(view)
            assert not wide["excess"], f"/sync/site scrolls sideways at {width}x{height}: {wide}"
            bad = screens.serious(screens.axe(view))
            assert not bad, f"/sync/site at {width}x{height}: {bad}"
        finally:
            context.close()


def test_a_new_kit_of_a_site_with_a_hub_records_as_soon_as_the_hub_says_it_holds_nothing_of_it(site, tmp_path):
    hub, _, _ = site
    new = Kit(tmp_path / "new", "merchC", hub.broker.port, ["web", "pos", "sync"]).init(demo=False)
    new.env["FIELDKIT_SITE_HUB_ADDRESS"] = "127.0.0.1"
    site.append(new)
    new.fieldkit("documents", "import", "pos.catalogue", str(Path(__file__).parents[2] / "pos" / "demo" / "catalogue.csv"))
    assert new.last_seq() == 0  # a fresh kit: nothing in its ledger yet
    new.up()
    first = time.monotonic()
    while (result := new.sell())[0] == 423:  # the first second or two: asking the hub, nothing recorded
        assert "checking with the site's hub" in result[1]["error"] and new.last_seq() == 0
        assert time.monotonic() - first < 20, "the hold outlived the hub's answer"
        time.sleep(0.2)
    assert result[0] == 201 and result[1]["receipt"] == "merchC-1"
    assert not new.db("SELECT reason FROM kit_ledger_hold")
    assert "event=ledger_hold_released kit=merchC reason=not_mirrored" in (new.root / "up.log").read_text()
