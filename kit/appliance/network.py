"""The kit's Wi-Fi through NetworkManager's ``nmcli``: the hotspot, the uplink, and "Go online".

The Pi's onboard radio cannot reliably be a hotspot and a client at once. So the hotspot profile is
bound to the onboard interface with a high autoconnect priority, and the uplink profile is not bound
to any interface: a second Wi-Fi adapter joins the uplink by itself, Ethernet and USB tethering get
NetworkManager's automatic wired profiles. "Go online" only moves the onboard radio to the uplink
when no other uplink is connected, and always brings the hotspot back.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("fieldkit.appliance.network")

HOTSPOT = "fieldkit-hotspot"
UPLINK = "fieldkit-uplink"
# Device types that can carry traffic to HQ ("gsm" is a USB modem, "bt" a phone over Bluetooth).
UPLINK_TYPES = ("ethernet", "wifi", "gsm", "bt", "wwan")


class NetworkError(Exception):
    """A network step failed; the message says what a lead can do about it."""


def check_wifi_password(password: str, what: str = "Wi-Fi password") -> None:
    """WPA2-PSK takes 8 to 63 printable ASCII characters."""
    if not 8 <= len(password) <= 63:
        raise NetworkError(f"the {what} must be 8 to 63 characters long (got {len(password)})")
    if not all(32 <= ord(c) < 127 for c in password):
        raise NetworkError(f"the {what} may only use printable ASCII characters")


def split_terse(line: str) -> list[str]:
    """Split one line of ``nmcli -t`` output: fields are separated by ':' and '\\:' is a literal colon."""
    fields, current, escaped = [], [], False
    for ch in line:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(ch)
    fields.append("".join(current))
    return fields


@dataclass(frozen=True)
class Device:
    name: str
    type: str
    state: str
    connection: str

    @property
    def connected(self) -> bool:
        return self.state.startswith("connected")


@dataclass
class NetworkStatus:
    devices: list[Device]
    hotspot_interface: str

    @property
    def hotspot_active(self) -> bool:
        return any(d.connection == HOTSPOT and d.connected for d in self.devices)

    @property
    def uplinks(self) -> list[Device]:
        """Connected devices that can reach beyond the kit (anything but the hotspot)."""
        return [d for d in self.devices
                if d.connected and d.type in UPLINK_TYPES and d.connection != HOTSPOT]

    def as_dict(self) -> dict:
        return {
            "hotspot_active": self.hotspot_active,
            "uplinks": [{"device": d.name, "type": d.type, "connection": d.connection} for d in self.uplinks],
            "devices": [vars(d) for d in self.devices],
        }


class Nmcli:
    """Runs ``nmcli``; the binary is looked up on PATH (tests put a recording stand-in there)."""

    def __init__(self, binary: str = "nmcli", timeout: float = 90.0, dry_run: bool = False):
        self.binary = binary
        self.timeout = timeout
        self.dry_run = dry_run  # simulating on a laptop: read the network, never change it

    def run(self, *args: str, check: bool = True) -> str:
        cmd = [self.binary, *args]
        if self.dry_run and changes_network(args):
            log.warning("event=host_action_skipped reason=simulation detail=%r",
                        f"would run: nmcli {' '.join(_redact(args))}")
            return ""
        timeout = self.timeout
        if len(args) > 1 and args[0] == "--wait" and args[1].isdigit():
            # nmcli waits that long itself (joining a Wi-Fi: association, WPA handshake, DHCP); the
            # web's short bound for status calls must not cut it off (a TCG guest's join took > 20 s).
            timeout = max(timeout, int(args[1]) + 15)
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=os.environ.copy())
        except FileNotFoundError:
            raise NetworkError("NetworkManager's nmcli is not installed (apt-get install network-manager)") from None
        except subprocess.TimeoutExpired:
            raise NetworkError(f"nmcli {' '.join(_redact(args))} did not answer within {timeout:.0f} s") from None
        if check and done.returncode != 0:
            message = (done.stderr or done.stdout).strip().splitlines()
            raise NetworkError(f"nmcli {' '.join(_redact(args))} failed: {message[-1] if message else done.returncode}")
        return done.stdout

    def connection_names(self) -> set[str]:
        return {split_terse(line)[0] for line in self.run("-t", "-f", "NAME", "connection", "show").splitlines() if line}

    def devices(self) -> list[Device]:
        out = self.run("-t", "-f", "DEVICE,TYPE,STATE,CONNECTION", "device", "status")
        devices = []
        for line in out.splitlines():
            parts = split_terse(line)
            if len(parts) >= 4:
                devices.append(Device(parts[0], parts[1], parts[2], parts[3]))
        return devices


NMCLI_OBJECTS = ("connection", "con", "c", "device", "dev", "d", "radio", "r", "general", "g", "networking", "n")


def changes_network(args: tuple[str, ...]) -> bool:
    """Does this nmcli command change something (up, down, add, modify, radio on...), or only read?"""
    words = [a for a in args if not a.startswith("-")]
    for i, word in enumerate(words):
        if word in NMCLI_OBJECTS:
            verb = words[i + 1] if i + 1 < len(words) else ""
            return verb not in ("", "show", "status", "s", "list", "wifi") or (verb == "wifi" and i + 2 < len(words)
                                                                               and words[i + 2] != "list")
    return True


def _redact(args: tuple[str, ...]) -> list[str]:
    """Never log a password: hide the value after any key that holds one."""
    out, hide = [], False
    for a in args:
        out.append("********" if hide else a)
        hide = a in ("wifi-sec.psk", "password")
    return out


def network_status(nm: Nmcli, hotspot_interface: str = "wlan0") -> NetworkStatus:
    return NetworkStatus(nm.devices(), hotspot_interface)


def _upsert(nm: Nmcli, name: str, add: list[str], settings: list[str]) -> None:
    """Create the profile, or update it in place: running again never duplicates a profile."""
    if name in nm.connection_names():
        nm.run("connection", "modify", name, *settings)
    else:
        nm.run("connection", "add", *add, "con-name", name, *settings)


def configure_hotspot(nm: Nmcli, ssid: str, password: str, interface: str = "wlan0",
                      address: str = "10.42.0.1") -> None:
    """The hotspot profile: WPA2, NetworkManager's shared IPv4 (DHCP + NAT), autoconnect first."""
    check_wifi_password(password, "hotspot password")
    _upsert(nm, HOTSPOT, ["type", "wifi", "ifname", interface], [
        "802-11-wireless.ssid", ssid, "802-11-wireless.mode", "ap", "802-11-wireless.band", "bg",
        "ipv4.method", "shared", "ipv4.addresses", f"{address}/24", "ipv6.method", "disabled",
        "wifi-sec.key-mgmt", "wpa-psk", "wifi-sec.proto", "rsn", "wifi-sec.psk", password,
        "connection.autoconnect", "yes", "connection.autoconnect-priority", "100",
    ])


def configure_uplink(nm: Nmcli, ssid: str, password: str) -> None:
    """The uplink profile, bound to no interface so a second adapter uses it as soon as it appears."""
    settings = ["802-11-wireless.ssid", ssid, "802-11-wireless.mode", "infrastructure",
                "connection.autoconnect", "yes", "connection.autoconnect-priority", "0", "ipv4.method", "auto"]
    if password:
        check_wifi_password(password, "uplink Wi-Fi password")
        settings += ["wifi-sec.key-mgmt", "wpa-psk", "wifi-sec.psk", password]
    _upsert(nm, UPLINK, ["type", "wifi", "ifname", "*"], settings)


def hotspot_up(nm: Nmcli, interface: str = "wlan0") -> None:
    # Raspberry Pi OS keeps the radio soft-blocked until a Wi-Fi country is set; ask for it on.
    nm.run("radio", "wifi", "on")
    nm.run("--wait", "60", "connection", "up", HOTSPOT, "ifname", interface)


@dataclass
class OnlineResult:
    via: str  # the device that carried the sync
    synced: bool  # the sync agent said it finished before the time ran out
    switched: bool  # the onboard radio left hotspot mode for it
    steps: list[str] = field(default_factory=list)


def go_online(
    nm: Nmcli,
    *,
    uplink_ssid: str,
    run_sync: Callable[[float], bool],
    interface: str = "wlan0",
    max_seconds: float = 600.0,
    report: Callable[[str, str], None] = lambda state, detail: None,
) -> OnlineResult:
    """Sync through an uplink; borrow the onboard radio from the hotspot only when there is no other.

    ``run_sync(timeout)`` asks the sync agent to sync and returns True once it says it is done.
    ``report(state, detail)`` tells the dashboard what is happening. The hotspot always comes back,
    whether the uplink could be joined or not.
    """
    status = network_status(nm, interface)
    others = [d for d in status.uplinks if d.name != interface or d.connection != UPLINK]
    if others:
        via = others[0]
        report("online", f"online via {via.name} ({via.connection}); syncing")
        synced = run_sync(max_seconds)
        return OnlineResult(via=via.name, synced=synced, switched=False, steps=[f"used {via.name}"])
    if not uplink_ssid:
        raise NetworkError("no uplink is connected and no uplink Wi-Fi is set: plug in Ethernet or a phone over "
                           "USB, or set network.uplink_ssid in fieldkit.toml")
    steps = []
    report("switching", f"leaving hotspot mode to join {uplink_ssid}; the hotspot is back in a few minutes")
    try:
        try:
            nm.run("--wait", "60", "connection", "up", UPLINK, "ifname", interface)
        except NetworkError as e:
            raise NetworkError(f"could not join the uplink Wi-Fi {uplink_ssid!r} ({e}); the hotspot is back") from None
        steps.append(f"joined {uplink_ssid} on {interface}")
        report("online", f"online via {interface} ({uplink_ssid}); syncing")
        started = time.monotonic()
        synced = run_sync(max_seconds)
        steps.append(f"sync {'finished' if synced else 'timed out'} after {time.monotonic() - started:.0f} s")
        return OnlineResult(via=interface, synced=synced, switched=True, steps=steps)
    finally:
        report("returning", "bringing the hotspot back")
        try:
            hotspot_up(nm, interface)
            report("hotspot", "hotspot is back")
        except NetworkError as e:
            log.error("event=hotspot_restore_failed error=%s", e)
            report("error", f"the hotspot did not come back: {e}")
