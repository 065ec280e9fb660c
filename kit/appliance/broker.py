"""The kit's Mosquitto configuration, written from the settings at every boot.

Every kit: a local anonymous listener on loopback for its own services, persistence on the data
partition. The site's hub (``site.hub``): also a LAN listener that needs the site password and may
only touch ``fieldkit/site/<site>/#``. Every other kit of a multi-kit site: a bridge that carries
``fieldkit/site/<site>/#`` both ways to the hub, so each kit keeps working alone when the link drops.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kit.config import Config

SITE_USER = "site"
# Mosquitto drops a publish with a bigger payload before any service (or the site bridge) sees it.
# A site message is one event (a few hundred bytes); nothing the kit sends comes near 1 MiB, and a
# hostile 10 MB body never reaches a parser. Mosquitto 2.0 (Debian bookworm: 2.0.11) keeps this option
# (max_packet_size would disconnect the sender instead of dropping the message).
MESSAGE_SIZE_LIMIT = 1024 * 1024


class BrokerConfigError(Exception):
    pass


@dataclass(frozen=True)
class BrokerFiles:
    conf: Path  # e.g. /etc/mosquitto/conf.d/fieldkit.conf
    password_file: Path  # e.g. /etc/mosquitto/fieldkit.passwd
    acl_file: Path  # e.g. /etc/mosquitto/fieldkit.acl
    persistence_dir: Path | None  # e.g. /var/lib/fieldkit/mosquitto; None: no persistence (tests)


def appliance_files(etc: Path, data_dir: Path) -> BrokerFiles:
    return BrokerFiles(etc / "mosquitto/conf.d/fieldkit.conf", etc / "mosquitto/fieldkit.passwd",
                       etc / "mosquitto/fieldkit.acl", data_dir / "mosquitto")


def render_conf(config: Config, files: BrokerFiles) -> str:
    site = config.site
    hub, hub_address, password = config["site.hub"], config["site.hub_address"], config["site.mqtt_password"]
    lan_port = config["site.mqtt_port"]
    lines = [
        "# Written by `fieldkit appliance boot` from fieldkit.toml at every boot: edit fieldkit.toml instead.",
        "per_listener_settings true",
        f"message_size_limit {MESSAGE_SIZE_LIMIT}",
    ]
    if files.persistence_dir is not None:
        lines += ["persistence true", f"persistence_location {files.persistence_dir}/", "autosave_interval 30"]
    else:
        lines.append("persistence false")
    lines += ["", "# This kit's own services.", f"listener {config['mqtt.port']} 127.0.0.1", "allow_anonymous true"]
    if hub and password:
        lines += [
            "", f"# The site's hub: other kits of site {site} bridge here with the site password.",
            f"listener {lan_port} 0.0.0.0", "allow_anonymous false",
            f"password_file {files.password_file}", f"acl_file {files.acl_file}",
        ]
    elif not hub and hub_address and password:
        lines += [
            "", f"# Bridge to the hub of site {site}: shared check-ins travel both ways.",
            f"connection fieldkit-hub-{config.kit_id}",
            f"address {hub_address}:{lan_port}",
            f"remote_username {SITE_USER}",
            f"remote_password {password}",
            f"remote_clientid fieldkit-bridge-{config.kit_id}",
            f"topic fieldkit/site/{site}/# both 1",
            "cleansession false",
            "try_private true",
            "notifications false",
            "restart_timeout 2 30",
            "keepalive_interval 15",
        ]
    return "\n".join(lines) + "\n"


def render_acl(config: Config) -> str:
    return f"user {SITE_USER}\ntopic readwrite fieldkit/site/{config.site}/#\n"


def write_password_file(path: Path, password: str) -> None:
    """Hash the site password with Mosquitto's own tool (never stored in clear on the kit's root)."""
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o640)
    os.close(fd)
    try:
        done = subprocess.run([tool, "-b", str(tmp), SITE_USER, password], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise BrokerConfigError("mosquitto_passwd is missing: install the mosquitto package") from None
    if done.returncode != 0:
        raise BrokerConfigError(f"mosquitto_passwd failed: {done.stderr.strip() or done.stdout.strip()}")
    os.replace(tmp, path)


def _give_to(path: Path, user: str) -> None:
    """Mosquitto drops root to its own user and then needs to read its files."""
    if os.geteuid() != 0:
        return
    try:
        import grp
        import pwd

        uid = pwd.getpwnam(user).pw_uid
        gid = grp.getgrnam(user).gr_gid
    except KeyError:
        return
    os.chown(path, 0 if path.is_file() else uid, gid)


def write_broker_config(config: Config, files: BrokerFiles) -> list[Path]:
    """Write the broker's files; returns what was written. Stale site files are removed."""
    written = []
    files.conf.parent.mkdir(parents=True, exist_ok=True)
    files.conf.write_text(render_conf(config, files))
    written.append(files.conf)
    if config["site.hub"] and config["site.mqtt_password"]:
        write_password_file(files.password_file, config["site.mqtt_password"])
        files.acl_file.write_text(render_acl(config))
        os.chmod(files.acl_file, 0o644)
        _give_to(files.password_file, "mosquitto")
        written += [files.password_file, files.acl_file]
    else:
        files.password_file.unlink(missing_ok=True)
        files.acl_file.unlink(missing_ok=True)
    if files.persistence_dir is not None:
        files.persistence_dir.mkdir(parents=True, exist_ok=True)
        _give_to(files.persistence_dir, "mosquitto")
    # The bridge carries the site password in clear: keep the file from other users.
    os.chmod(files.conf, 0o640)
    _give_to(files.conf, "mosquitto")
    return written
