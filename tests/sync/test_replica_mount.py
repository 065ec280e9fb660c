"""The appliance's one USB mount: a udev rule names the drive and pulls in a mount unit at the folder the
replica (sync/replica.py) and the USB updates read, writable by the services' user."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

from sync.replica import USB_FOLDER, USB_MOUNT

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "image-build" / "files"
UNIT = FILES / "media-fieldkit\\x2dusb.mount"


def test_the_mount_unit_is_named_after_its_folder_and_writable_by_the_services():
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(UNIT)
    assert parser["Mount"]["Where"] == str(USB_MOUNT) == "/media/fieldkit-usb"
    if shutil.which("systemd-escape"):  # systemd finds a mount unit only under its folder's escaped name
        name = subprocess.run(["systemd-escape", "-p", "--suffix=mount", str(USB_MOUNT)], capture_output=True,
                              text=True, check=True).stdout.strip()
        assert UNIT.name == name
    options = parser["Mount"]["Options"].split(",")
    assert {"uid=fieldkit", "gid=fieldkit", "noexec", "nosuid", "nodev"} <= set(options)
    assert parser["Mount"]["What"] == "/dev/fieldkit/usb" and parser["Unit"]["BindsTo"] == "dev-fieldkit-usb.device"
    assert USB_FOLDER == "fieldkit-backup"


def test_the_udev_rule_names_the_drive_and_pulls_in_that_unit_and_provision_installs_both():
    rule = next(line for line in (FILES / "71-fieldkit-usb.rules").read_text().splitlines()
                if line and not line.startswith("#"))
    assert 'ENV{ID_BUS}=="usb"' in rule and 'SYMLINK+="fieldkit/usb"' in rule
    assert 'ENV{SYSTEMD_WANTS}+="media-fieldkit\\x2dusb.mount"' in rule
    provision = (ROOT / "image-build" / "provision.sh").read_text()
    assert "71-fieldkit-usb.rules\" /etc/udev/rules.d/" in provision and "x2dusb.mount'" in provision
    for unit in ("fieldkit-sync.service", "fieldkit-group@.service"):
        assert "-/media/fieldkit-usb" in (ROOT / "systemd" / unit).read_text()


def test_no_path_unit_watches_the_stick_and_the_mount_starts_the_update_pickup():
    """A path unit beneath a mount point requires that mount: watching the stick's folder made every boot
    without a stick wait 90 s for one, and the path unit then failed, watching nothing at all."""
    for unit in (ROOT / "systemd").glob("*.path"):
        for line in unit.read_text().splitlines():  # a key may repeat: every watched path, not the last
            key, _, watched = line.partition("=")
            if key.startswith(("Path", "DirectoryNotEmpty")):
                assert not watched.startswith(str(USB_MOUNT)), f"{unit.name} watches {watched} on the stick"
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(UNIT)
    assert parser["Unit"]["Wants"] == parser["Unit"]["Before"] == "fieldkit-update.service"
