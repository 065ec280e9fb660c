"""The device scenario's Wi-Fi steps: three ``mac80211_hwsim`` radios and the kit's real NetworkManager.

- radio 0 (wlan0) stays with the kit: its NetworkManager brings up the hotspot from the kit's settings
  when the interface appears (the ``fieldkit-hotspot`` unit, started by wlan0's device unit);
- radio 1 goes to the network namespace ``fkphone``: a phone, ``wpa_supplicant`` and ``dhclient``, joins
  with the SSID and password read off the setup slip (/etc/issue.d) and opens the slip's address;
- radio 2 goes to ``fkvenue``: the venue's Wi-Fi (``hostapd``, DHCP from ``dnsmasq``) with an HQ
  (``fieldkit hq serve``) behind it, reachable only from there.

"Go online" is the lead's button (``POST /api/v1/network/online``): the kit's radio leaves the hotspot for
the venue, the sync agent uploads to that HQ, and the hotspot comes back by itself; the phone rejoins.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

from guest_common import WORK, NotRun, out, sh, wait_for

KIT_RADIO = "wlan0"
PHONE_NS, VENUE_NS = "fkphone", "fkvenue"
VENUE_SSID, VENUE_PASSWORD = "FkVenue", "venue wifi pass"
VENUE_ADDR, HQ_PORT = "10.99.0.1", 8090
HQ_DB = WORK / "hq.db"
KIT_TOML = Path("/etc/fieldkit/kit.toml")
SLIP = Path("/etc/issue.d/fieldkit.issue")
FIELDKIT = "/var/lib/fieldkit/releases/current/bin/fieldkit"
PYTHON = "/opt/fieldkit/bin/python"
# What a step that failed shows of the guest's journal, besides the kit's own units.
LOG_UNITS = ["NetworkManager", "fieldkit-hotspot", "fieldkit-web", "fieldkit-group@status"]


def network_settings() -> str:
    """kit.toml's part for these steps (written before the web service starts: it reads the uplink)."""
    return f'[network]\nuplink_ssid = "{VENUE_SSID}"\nuplink_password = "{VENUE_PASSWORD}"\n'


def in_ns(ns: str, *cmd: str, timeout: float = 60, check: bool = True) -> str:
    return sh("ip", "netns", "exec", ns, *cmd, timeout=timeout, check=check)


def radios() -> dict[str, str]:
    """{interface: phy} from ``iw dev`` (hwsim's radios in the order the module made them)."""
    found, phy = {}, None
    for line in sh("iw", "dev").splitlines():
        m = re.match(r"phy#(\d+)", line.strip())
        if m:
            phy = f"phy{m.group(1)}"
        m = re.match(r"Interface (\S+)", line.strip())
        if m and phy:
            found[m.group(1)] = phy
    return found


def slip_credentials() -> tuple[str, str, str]:
    """(SSID, password, address) as the setup slip on the console shows them to whoever holds a phone."""
    text = SLIP.read_text().replace("\\\\", "\\")
    fields = {}
    for key in ("Wi-Fi", "Password", "Address"):
        m = re.search(rf"^{key}:\s+(.+?)\s*$", text, re.M)
        if not m:
            raise AssertionError(f"the setup slip ({SLIP}) shows no {key!r} line")
        fields[key] = m.group(1)
    return fields["Wi-Fi"], fields["Password"], fields["Address"]


def nm_active() -> dict[str, str]:
    """{connection name: device} of NetworkManager's active connections."""
    active = {}
    for line in sh("nmcli", "-t", "-f", "NAME,DEVICE", "connection", "show", "--active", check=False).splitlines():
        name, _, device = line.rpartition(":")
        active[name.replace("\\:", ":")] = device
    return active


def kit_last_seq() -> int:
    import sqlite3

    conn = sqlite3.connect("file:/var/lib/fieldkit/kit.db?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
    finally:
        conn.close()


def start_daemon(ns: str, name: str, *cmd: str, timeout: float = 120) -> None:
    """Run a program that puts itself in the background (``-B``, dhclient, dnsmasq) inside ``ns``; its
    output goes to WORK/<name>.log rather than a pipe its daemon would hold open."""
    with (WORK / f"{name}.log").open("a") as log:
        done = subprocess.run(["ip", "netns", "exec", ns, *cmd], stdout=log, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=timeout)
    if done.returncode != 0:
        tail = (WORK / f"{name}.log").read_text(errors="replace").strip()[-300:]
        raise AssertionError(f"{name} ({' '.join(cmd[:2])}) exited {done.returncode}: {tail}")


def fetch_in(ns: str, url: str) -> tuple[int, str]:
    """GET ``url`` from inside a namespace with the guest's Python: (status, first bytes of the body)."""
    script = (
        "import json, sys, urllib.request\n"
        "try:\n"
        "    r = urllib.request.urlopen(sys.argv[1], timeout=10)\n"
        "    print(json.dumps([r.status, r.read(4000).decode(errors='replace')]))\n"
        "except Exception as e:\n"
        "    print(json.dumps([0, repr(e)]))\n"
    )
    status, body = json.loads(in_ns(ns, PYTHON, "-c", script, url, timeout=60))
    return status, body


class Wifi:
    def __init__(self, kit_id: str, lead, ask_sync_now):
        self.kit_id = kit_id
        self.lead = lead  # a callable: the signed-in lead (guest-scenario's Lead)
        self.ask_sync_now = ask_sync_now  # publishes the sync agent's "sync now" command
        self.phone_if = self.venue_if = ""
        self.ssid = self.password = self.url = ""
        self.procs: list[subprocess.Popen] = []
        self.eth_was_connected = False

    # wifi.hotspot: the radio appears, the kit's hotspot comes up by itself
    def hotspot(self) -> str:
        if subprocess.run(["modinfo", "mac80211_hwsim"], capture_output=True).returncode != 0:
            raise NotRun("this kernel has no mac80211_hwsim module")
        t0 = time.monotonic()
        sh("modprobe", "mac80211_hwsim", "radios=3")
        found = wait_for("three hwsim radios", lambda: len(radios()) >= 3 and radios(), 20)
        if KIT_RADIO not in found:
            raise AssertionError(f"no {KIT_RADIO} among the radios: {found}")
        # The other two leave the kit's namespace at once, before its NetworkManager can use them.
        others = sorted(i for i in found if i != KIT_RADIO)
        self.phone_if, self.venue_if = others[0], others[1]
        for ns, iface in ((PHONE_NS, self.phone_if), (VENUE_NS, self.venue_if)):
            sh("ip", "netns", "add", ns, check=False)
            sh("iw", "phy", found[iface], "set", "netns", "name", ns)
            in_ns(ns, "ip", "link", "set", "lo", "up")
            Path(f"/etc/netns/{ns}").mkdir(parents=True, exist_ok=True)
            Path(f"/etc/netns/{ns}/resolv.conf").touch()  # dhclient writes this one, not the guest's
        wait_for(
            "the hotspot (NetworkManager's fieldkit-hotspot active on wlan0)",
            lambda: nm_active().get("fieldkit-hotspot") == KIT_RADIO,
            60,
            interval=0.5,
        )
        took = time.monotonic() - t0
        # The profile may come up by NetworkManager's autoconnect before the unit's own `connection up`
        # returns: the unit (a oneshot) must still finish, and succeed.
        unit = wait_for("fieldkit-hotspot.service done", lambda: (state := sh(
            "systemctl", "is-active", "fieldkit-hotspot.service", check=False).strip()) in ("active", "failed")
            and state, 60, interval=0.5)
        if unit != "active":
            raise AssertionError(f"the hotspot is up but fieldkit-hotspot.service is {unit}")
        unit_took = time.monotonic() - t0
        mode = sh("iw", "dev", KIT_RADIO, "info")
        if "type AP" not in mode:
            raise AssertionError(f"{KIT_RADIO} is not in AP mode: {mode.strip()[-200:]}")
        return (f"radio appeared -> hotspot up in {took:.1f}s, fieldkit-hotspot.service (started by "
                f"{KIT_RADIO}'s device unit) done in {unit_took:.1f}s; phone radio {self.phone_if}, "
                f"venue radio {self.venue_if}")

    # wifi.phone: a phone joins with the slip's password, gets an address, opens the slip's URL
    def phone(self) -> str:
        self.ssid, self.password, self.url = slip_credentials()
        conf = WORK / "phone-wpa.conf"
        conf.write_text(
            f"ctrl_interface={WORK}/phone-wpa\n"
            f'network={{\n  ssid="{self.ssid}"\n  psk="{self.password}"\n  key_mgmt=WPA-PSK\n  proto=RSN\n}}\n'
        )
        t0 = time.monotonic()
        start_daemon(PHONE_NS, "phone-wpa", "wpa_supplicant", "-B", "-D", "nl80211", "-i", self.phone_if,
                     "-c", str(conf), "-P", str(WORK / "phone-wpa.pid"))
        joined = self._wait_joined("the phone associated with the hotspot", 60) - t0
        start_daemon(PHONE_NS, "phone-dhclient", "dhclient", "-4", "-1", "-v", "-pf",
                     str(WORK / "phone-dhclient.pid"), "-lf", str(WORK / "phone.leases"), self.phone_if, timeout=300)
        address = self._phone_address()
        leased = time.monotonic() - t0
        status, body = wait_for(f"the kit's page at {self.url} from the phone",
                                lambda: (r := fetch_in(PHONE_NS, self.url))[0] == 200 and r, 30, interval=1)
        if 'name="pin"' not in body and "Field Kit" not in body:
            raise AssertionError(f"{self.url} answered the phone, but not with the kit's page: {body[:200]!r}")
        return (f"joined {self.ssid!r} with the slip's password in {joined:.1f}s, DHCP gave {address} "
                f"({leased:.1f}s), {self.url} answered {status} ({time.monotonic() - t0:.1f}s in all)")

    def _wait_joined(self, what: str, timeout: float) -> float:
        wait_for(what, lambda: "wpa_state=COMPLETED" in in_ns(
            PHONE_NS, "wpa_cli", "-p", str(WORK / "phone-wpa"), "-i", self.phone_if, "status", check=False),
            timeout, interval=0.5)
        return time.monotonic()

    def _phone_address(self) -> str:
        got = in_ns(PHONE_NS, "ip", "-4", "-o", "addr", "show", "dev", self.phone_if)
        m = re.search(r"inet (\d+\.\d+\.\d+\.\d+)", got)
        if not m:
            raise AssertionError(f"the phone has no IPv4 address after DHCP: {got.strip()}")
        return m.group(1)

    # wifi.online: the venue and its HQ, then the lead's "Go online"
    def online(self) -> str:
        self._venue_up()
        token = self._hq_token()
        # At the venue there is no cable: the QEMU NIC goes, so the onboard radio is the only way out.
        eth = sh("nmcli", "-t", "-f", "DEVICE,STATE", "device", "status", check=False)
        self.eth_was_connected = "eth0:connected" in eth
        if self.eth_was_connected:
            sh("nmcli", "device", "disconnect", "eth0")
        with KIT_TOML.open("a") as f:  # what personalise.sh --hq-url --hq-token leaves on a kit
            f.write(f'[sync]\nhq_url = "http://{VENUE_ADDR}:{HQ_PORT}"\nhq_token = "{token}"\n')
        self.ask_sync_now()  # the agent reads its settings again after a session that found no HQ set
        lead = self.lead()
        # Something HQ must end up holding: an incident the lead logs while the kit is offline.
        code, body = lead.post("/api/v1/lead/incidents",
                               {"category": "other", "severity": "low", "note": "logged before Go online"})
        if code != 201:
            raise AssertionError(f"logging an incident answered {code} {body}")
        incident_seq = kit_last_seq()
        code, body = lead.post("/api/v1/network/online", {})
        if code != 202:
            raise AssertionError(f"Go online answered {code}: {body}")
        t0 = time.monotonic()
        seen: dict[str, float] = {}
        last: dict = {}

        def finished():
            nonlocal last
            _code, net = lead.get("/api/v1/network")
            last = (net or {}).get("online") or {}
            state = last.get("state", "")
            seen.setdefault(state, time.monotonic() - t0)
            return state in ("done", "error") and last

        final = wait_for("the end of Go online", finished, 300, interval=0.5)
        timeline = ", ".join(f"{s} {t:.1f}s" for s, t in seen.items())
        if final["state"] != "done" or "sync finished" not in final.get("detail", ""):
            raise AssertionError(f"Go online ended {final}: {timeline}")
        if "online" not in seen:
            raise AssertionError(f"the radio never reported joining {VENUE_SSID}: {timeline}")
        held, hwm = self._hq_events()
        if hwm < incident_seq:
            for line in sh(FIELDKIT, "hq", "kits", "list", "--db", f"sqlite:///{HQ_DB}", check=False).splitlines():
                out(f"FKSCNLOG wifi.online: hq kits list: {line}")
            import sqlite3

            conn = sqlite3.connect(HQ_DB)
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            counts = {t: conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}
            conn.close()
            out(f"FKSCNLOG wifi.online: hq tables: {counts}")
            for line in (WORK / "hq.log").read_text(errors="replace").splitlines()[-15:]:
                out(f"FKSCNLOG wifi.online: hq: {line}")
            for line in sh("/usr/local/bin/fieldkit", "sync", "status", check=False).splitlines():
                out(f"FKSCNLOG wifi.online: sync status: {line}")
            raise AssertionError(f"Go online said the sync finished, but HQ holds the kit's events only up to seq "
                                 f"{hwm}, not {incident_seq}: {timeline}; "
                                 f"the kit said {final}")
        back = wait_for("the hotspot back on wlan0", lambda: nm_active().get("fieldkit-hotspot") == KIT_RADIO,
                        60, interval=0.5)
        return (f"{timeline}; HQ behind {VENUE_SSID} holds the kit's {held} events up to seq {hwm} (the incident "
                f"logged offline included); hotspot back: {bool(back)}; "
                f"the kit said: {final.get('detail', '')[:120]}")

    def _venue_up(self) -> None:
        in_ns(VENUE_NS, "ip", "addr", "add", f"{VENUE_ADDR}/24", "dev", self.venue_if, check=False)
        in_ns(VENUE_NS, "ip", "link", "set", self.venue_if, "up")
        conf = WORK / "venue-hostapd.conf"
        conf.write_text(
            f"interface={self.venue_if}\ndriver=nl80211\nssid={VENUE_SSID}\nhw_mode=g\nchannel=6\n"
            f"wpa=2\nwpa_passphrase={VENUE_PASSWORD}\nwpa_key_mgmt=WPA-PSK\nrsn_pairwise=CCMP\n"
        )
        start_daemon(VENUE_NS, "venue-hostapd", "hostapd", "-B", "-P", str(WORK / "venue-hostapd.pid"), str(conf))
        start_daemon(VENUE_NS, "venue-dnsmasq", "dnsmasq", "--port=0", f"--interface={self.venue_if}", "--bind-interfaces",
              "--dhcp-range=10.99.0.50,10.99.0.99,1h", f"--dhcp-leasefile={WORK}/venue.leases",
              f"--pid-file={WORK}/venue-dnsmasq.pid", "--user=root", "--no-resolv")
        log = (WORK / "hq.log").open("w")
        self.procs.append(subprocess.Popen(
            ["ip", "netns", "exec", VENUE_NS, "env", f"FIELDKIT_HQ_BUNDLE_DIR={WORK}/hq-bundles", FIELDKIT, "hq", "serve", "--db", f"sqlite:///{HQ_DB}",
             "--host", VENUE_ADDR, "--port", str(HQ_PORT)], stdout=log, stderr=subprocess.STDOUT))
        wait_for("HQ answering in the venue", lambda: fetch_in(
            VENUE_NS, f"http://{VENUE_ADDR}:{HQ_PORT}/api/v1/health")[0] == 200, 120, interval=1)

    def _hq_token(self) -> str:
        said = sh(FIELDKIT, "hq", "kits", "add", self.kit_id, "--site", "testsite", "--relay", "--db", f"sqlite:///{HQ_DB}",
                  timeout=120)
        m = re.search(r"shown once\):\s*\n\s*(\S+)", said)
        if not m:
            raise AssertionError(f"hq kits add printed no token: {said[-200:]}")
        return m.group(1)

    def _hq_events(self) -> tuple[int, int]:
        """(events, hwm) of this kit as HQ's own `hq kits list` says them."""
        said = sh(FIELDKIT, "hq", "kits", "list", "--db", f"sqlite:///{HQ_DB}", timeout=120)
        m = re.search(rf"^{re.escape(self.kit_id)}\s.*?events\s+(\d+)\s+hwm\s+(\d+)", said, re.M)
        return (int(m.group(1)), int(m.group(2))) if m else (0, 0)

    # wifi.rejoin: with the hotspot back, the phone is on it again without anyone touching it
    def rejoin(self) -> str:
        t0 = time.monotonic()
        joined = self._wait_joined("the phone back on the hotspot", 90) - t0
        status, _ = wait_for(f"{self.url} from the phone again",
                             lambda: (r := fetch_in(PHONE_NS, self.url))[0] == 200 and r, 60, interval=1)
        return f"phone associated again {joined:.1f}s after the hotspot came back, {self.url} answered {status}"

    def close(self) -> None:
        for p in self.procs:
            p.terminate()
        if self.eth_was_connected:
            sh("nmcli", "device", "connect", "eth0", check=False)
        for pid in ("phone-wpa.pid", "phone-dhclient.pid", "venue-hostapd.pid", "venue-dnsmasq.pid"):
            try:
                sh("kill", (WORK / pid).read_text().strip(), check=False)
            except OSError:
                pass
        out("FKSCN wifi closed")
