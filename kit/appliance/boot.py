"""What the kit does at every boot (``fieldkit appliance boot``, run by fieldkit-boot.service as root).

The first boot makes the kit's secrets and PINs and its database; every boot re-applies the lead's
``fieldkit.toml`` from the boot partition: the Mosquitto configuration (site hub or bridge), the
system time zone, and hands the state directory to the ``fieldkit`` user. The hotspot and the setup
slip have their own units because they wait for NetworkManager and the POS service.
"""

from __future__ import annotations

import logging
import os
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kit.appliance.broker import appliance_files, write_broker_config
from kit.appliance.network import NetworkError, check_wifi_password
from kit.config import Config, ConfigError, Paths, load_config

log = logging.getLogger("fieldkit.appliance.boot")

SERVICE_USER = "fieldkit"
HOTSPOT_PASSWORD_FILE = "hotspot-password.txt"
# No look-alike characters: the password is read off a slip of paper and typed on a phone.
_PASSWORD_ALPHABET = "".join(c for c in string.ascii_lowercase + string.digits if c not in "l1o0")


@dataclass
class BootReport:
    first_boot: bool = False
    pins: dict[str, str] | None = None
    steps: list[str] = field(default_factory=list)


def strip_bom(path: Path) -> bool:
    """A file saved by some Windows editors starts with a byte-order mark TOML does not allow."""
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, PermissionError):
        return False
    if raw.startswith(b"\xef\xbb\xbf"):
        path.write_bytes(raw[3:])
        return True
    return False


def hotspot_credentials(config: Config, create: bool = True) -> tuple[str, str]:
    """(ssid, password) of the kit's hotspot: from the settings, else made once at first boot."""
    ssid = config["network.hotspot_ssid"] or f"fieldkit-{config.kit_id}"
    password = config["network.hotspot_password"]
    if password:
        try:
            check_wifi_password(password, "hotspot password (network.hotspot_password)")
        except NetworkError as e:
            raise ConfigError(f"{config.sources['network.hotspot_password']}: {e}") from None
        return ssid, password
    path = config.secrets_dir / HOTSPOT_PASSWORD_FILE
    if path.exists():
        return ssid, path.read_text().strip()
    if not create:
        raise ConfigError("the hotspot has no password yet: run `fieldkit appliance boot` first")
    password = "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(12))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    return ssid, password


def apply_timezone(tz: str, etc: Path) -> bool:
    """Point /etc/localtime at the kit's time zone (so logs and the console agree with the dashboard)."""
    zone = Path("/usr/share/zoneinfo") / tz
    if not zone.is_file():
        return False
    localtime = etc / "localtime"
    if localtime.is_symlink() and os.readlink(localtime) == str(zone):
        return False
    tmp = etc / "localtime.fieldkit-tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(zone)
    os.replace(tmp, localtime)
    (etc / "timezone").write_text(tz + "\n")
    (etc / "timezone").chmod(0o644)  # every user reads it; the boot runs under the kit's umask 0027
    return True


def hand_to_service_user(data_dir: Path, user: str = SERVICE_USER) -> bool:
    """Root made the state: give it to the service user (Mosquitto's own directory stays Mosquitto's)."""
    if os.geteuid() != 0:
        return False
    import pwd

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return False
    for root, dirs, files in os.walk(data_dir):
        if Path(root) == data_dir:  # a data partition's own lost+found stays root's
            dirs[:] = [d for d in dirs if d not in ("mosquitto", "lost+found")]
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)
    return True


def run_boot(etc: Path = Path("/etc"), echo: Callable[[str], None] = print) -> BootReport:
    """First boot and every boot. Raises ConfigError when fieldkit.toml is wrong (the caller shows it)."""
    from kit.initkit import init_kit
    from kit.secrets import Secrets

    report = BootReport()
    boot_toml = Paths.from_env(os.environ).boot_toml
    if strip_bom(boot_toml):
        report.steps.append(f"removed a byte-order mark from {boot_toml}")
    config = load_config()
    report.first_boot = not Secrets(config.secrets_dir).exists()
    report.pins = init_kit(echo=lambda line: report.steps.append(line))
    if report.first_boot:
        report.steps.append("first boot: made the database, the session key and one PIN per role")
    if _hold_until_the_mirror_answers(load_config()):
        report.steps.append("nothing is recorded until the site's hub says whether it already holds this kit")
    hotspot_credentials(config)
    for path in write_broker_config(config, appliance_files(etc, config.data_dir)):
        report.steps.append(f"wrote {path}")
    if apply_timezone(config["kit.timezone"], etc):
        report.steps.append(f"time zone set to {config['kit.timezone']}")
    (config.data_dir / "cache").mkdir(exist_ok=True)
    if hand_to_service_user(config.data_dir):
        report.steps.append(f"{config.data_dir} belongs to {SERVICE_USER}")
    for step in report.steps:
        log.info("event=boot_step detail=%r", step)
        echo(step)
    return report


def _hold_until_the_mirror_answers(config) -> bool:
    from kit.db import Database
    from kit.ledger_hold import hold_until_the_mirror_answers

    db = Database(config.db_path, config["db.busy_timeout_ms"])
    try:
        with db.transaction() as conn:
            return hold_until_the_mirror_answers(config, conn)
    finally:
        db.close()


def config_error_notice(error: Exception) -> str:
    """What the HDMI console shows when fieldkit.toml cannot be used (the kit's services cannot start)."""
    return (
        "\nField Kit cannot start: fieldkit.toml on the SD card has a problem.\n\n"
        f"  {error}\n\n"
        "Put the SD card in a laptop, fix the file on the boot partition (or run personalise.sh again),\n"
        "then start the kit again.\n\n"
    ).replace("\\", "\\\\")
