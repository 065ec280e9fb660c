"""The kiosk on the attached screen: whether it runs here, and the compositor and browser it runs.

fieldkit-kiosk.service asks ``fieldkit appliance kiosk --check`` (as root, it reads fieldkit.toml) whether
to start at all; that writes where the browser goes to an environment file. ``fieldkit appliance kiosk
--run`` (as the unprivileged kiosk user) then becomes Debian's ``cage`` running ``chromium --kiosk``. The
browser first opens a page shipped with the kit (a ``file:`` URL), which waits for the kit's web server
and then goes to ``/kiosk`` there, so a slow boot or a restarting web process never shows a browser error.

Chromium and cage need about 250 MB of memory: "auto" turns the kiosk on only on a Raspberry Pi with
1 GB or more and a screen connected, and says which of these is missing otherwise.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("fieldkit.appliance.kiosk")

# The kernel reports a 1 GB Pi as ~900-950 MiB (the firmware keeps some); a 512 MB one as ~430-470 MiB.
MIN_RAM_MIB = 800
STARTING_PAGE = Path(__file__).resolve().parents[1] / "web" / "static" / "kiosk-starting.html"
ENV_URL, ENV_NOTE = "FIELDKIT_KIOSK_TARGET", "FIELDKIT_KIOSK_NOTE"
PAGES = {"/door": "/door", "/merch": "/merch", "/dashboard": "/"}

# What the kiosk's chromium is told, and why:
CHROMIUM_FLAGS = [
    "--kiosk",                                        # full screen, no tabs, address bar or menus
    "--ozone-platform=wayland",                       # a client of cage, no X server
    "--autoplay-policy=no-user-gesture-required",     # the door's sounds play without a first tap
    "--disable-pinch",                                # no pinch zoom on the touch screen
    "--overscroll-history-navigation=0",              # a swipe does not go back a page
    "--noerrdialogs", "--disable-session-crashed-bubble", "--disable-infobars",  # no "restore pages?" after a power cut
    "--no-first-run", "--disable-translate", "--disable-features=Translate,TranslateUI",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",  # offline: never phone home
    "--password-store=basic",                         # no keyring prompt for the PIN form
]


@dataclass(frozen=True)
class Decision:
    on: bool
    reason: str


@dataclass(frozen=True)
class Host:
    """What the decision looks at; ``Host.read()`` takes it from this machine (tests pass their own)."""

    model: str            # /proc/device-tree/model, "" when not a device-tree board
    ram_mib: int          # MemTotal
    screens: list[str]    # connected DRM connectors, e.g. ["card1-HDMI-A-1"]
    programs: dict[str, bool]

    @classmethod
    def read(cls, root: Path = Path("/")) -> Host:
        try:
            model = (root / "proc/device-tree/model").read_bytes().rstrip(b"\0").decode(errors="replace")
        except OSError:
            model = ""
        ram = 0
        try:
            for line in (root / "proc/meminfo").read_text().splitlines():
                if line.startswith("MemTotal:"):
                    ram = int(line.split()[1]) // 1024
        except (OSError, ValueError, IndexError):
            pass
        screens = []
        for status in sorted((root / "sys/class/drm").glob("card*-*/status")):
            try:
                if status.read_text().strip() == "connected":
                    screens.append(status.parent.name)
            except OSError:
                continue
        programs = {p: shutil.which(p) is not None for p in ("cage", "chromium")}
        return cls(model, ram, screens, programs)


def decide(setting: str, host: Host) -> Decision:
    """On or off, and why in words a lead understands (the doctor line and the unit's log line)."""
    missing = [p for p, there in host.programs.items() if not there]
    if setting == "off":
        return Decision(False, "off: kiosk.enabled = \"off\"")
    if missing:
        return Decision(False, f"off: {' and '.join(missing)} not installed (image-build/provision.sh installs them)")
    if setting == "on":
        return Decision(True, "on: kiosk.enabled = \"on\"")
    if not host.model.startswith("Raspberry Pi"):
        return Decision(False, "off: not a Raspberry Pi (kiosk.enabled = \"auto\"; set \"on\" to force it)")
    if host.ram_mib < MIN_RAM_MIB:
        return Decision(False, f"off: this Pi has {host.ram_mib} MiB of memory; the kiosk needs a 1 GB Pi "
                               "(chromium and cage take ~250 MB); set kiosk.enabled = \"on\" to force it")
    if not host.screens:
        return Decision(False, "off: no screen connected at boot (HDMI or the DSI touch display)")
    return Decision(True, f"on: {host.model}, {host.ram_mib} MiB, screen {', '.join(host.screens)}")


def kit_target(config) -> str:
    """Where the kiosk's browser goes: the kit's own web server over loopback."""
    return f"http://127.0.0.1:{config['web.port']}/kiosk"


def starting_url(target: str, note: str = "") -> str:
    """The local page the browser opens first: it waits for ``target`` and goes there when it answers."""
    query = {"to": target} | ({"note": note} if note else {})
    return STARTING_PAGE.as_uri() + "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)


def check(env_path: Path | None, host: Host | None = None) -> Decision:
    """``--check``: decide, log why, and leave the browser's destination in ``env_path`` for the unit.

    A fieldkit.toml that cannot be read does not stop the kiosk (when the machine qualifies): the kit
    cannot start then, and the screen is where the lead learns why.
    """
    from kit.appliance.boot import config_error_notice
    from kit.config import ConfigError, load_config

    host = host or Host.read()
    note, port_target = "", "http://127.0.0.1:8080/kiosk"
    try:
        config = load_config()
    except ConfigError as e:
        decision = decide("auto", host)
        note = config_error_notice(e).replace("\\\\", "\\").strip()
    else:
        decision = decide(config["kiosk.enabled"], host)
        port_target = kit_target(config)
    log.info("event=kiosk_%s reason=%r", "on" if decision.on else "off", decision.reason)
    if decision.on and env_path is not None:
        env_path.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{ENV_URL}={port_target}"] + ([f"{ENV_NOTE}={_env_quote(note)}"] if note else [])
        env_path.write_text("\n".join(lines) + "\n")
    return decision


def _env_quote(text: str) -> str:
    """One line for a systemd EnvironmentFile (double quotes; it has no escape for a newline)."""
    one_line = " ".join(part.strip() for part in text.splitlines() if part.strip())
    return '"' + one_line.replace("\\", "\\\\").replace('"', '\\"') + '"'


def browser_command(url: str, profile: Path, extra: list[str] = ()) -> list[str]:
    return ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url]


def profile_dir(env: dict) -> Path:
    return Path(env.get("FIELDKIT_KIOSK_PROFILE") or Path(env.get("HOME", "/var/lib/fieldkit-kiosk")) / "chromium")


def command(env: dict | None = None, extra: list[str] = ()) -> list[str]:
    """``--run``: cage with chromium on the starting page (``-d``: no window decorations)."""
    env = os.environ if env is None else env
    target = env.get(ENV_URL) or "http://127.0.0.1:8080/kiosk"
    return ["cage", "-d", "--", *browser_command(starting_url(target, env.get(ENV_NOTE, "")), profile_dir(env), extra)]


# Chromium has no command-line switch for these: without them the first PIN typed on the screen opens a
# "Save password?" panel over the page (seen in the test's screenshots), and a power cut a "Restore pages?" one.
PREFERENCES = {
    "credentials_enable_service": False,
    "profile": {"password_manager_enabled": False, "exit_type": "Normal", "exited_cleanly": True},
    "translate": {"enabled": False},
    "autofill": {"profile_enabled": False, "credit_card_enabled": False},
}


def prepare_profile(profile: Path) -> Path:
    """Merge PREFERENCES into the profile's Preferences before every start (chromium keeps the rest)."""
    path = profile / "Default" / "Preferences"
    try:
        prefs = json.loads(path.read_text())
        if not isinstance(prefs, dict):
            prefs = {}
    except (OSError, ValueError):
        prefs = {}
    for key, value in PREFERENCES.items():
        if isinstance(value, dict) and isinstance(prefs.get(key), dict):
            prefs[key] = prefs[key] | value
        else:
            prefs[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(prefs))
    return path


def doctor_check(config) -> list:
    from kit.doctor import fail, ok

    decision = decide(config["kiosk.enabled"], Host.read())
    if not decision.on and config["kiosk.enabled"] == "on":
        return [fail("kiosk", decision.reason, "sudo apt-get install cage chromium xwayland")]
    page = config["kiosk.page"]
    return [ok("kiosk", f"{decision.reason} (shows {page})" if decision.on else decision.reason)]
