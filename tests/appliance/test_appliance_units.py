"""The systemd units: `systemd-analyze verify` clean, one unit per service and per service group, hardened, ordered."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from kit import topics

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "systemd"
HOST_UNITS = Path("/usr/lib/systemd/system")
GROUPS_BY_SERVICE = {"checkin": {"video", "input"}, "pos": {"lp"}, "power": {"dialout", "i2c"},
                     "cues": {"gpio", "audio"}}


def parse(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None,
                                       dict_type=dict, empty_lines_in_values=False)
    parser.optionxform = str
    # Repeated keys (Wants= on several lines) are legal in systemd: keep the last, tests below look at single keys.
    parser.read_string(path.read_text())
    return parser


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory) -> Path:
    """A root where /opt/fieldkit/bin/fieldkit exists, with the host's system units (targets, mosquitto)."""
    if not shutil.which("systemd-analyze") or not HOST_UNITS.is_dir():
        pytest.fail("systemd-analyze is missing: install the systemd package")
    root = tmp_path_factory.mktemp("root")
    exe = root / "opt/fieldkit/bin/fieldkit"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    (root / "var/lib/fieldkit/releases").mkdir(parents=True)  # the units start the release slot `current` names
    (root / "var/lib/fieldkit/releases/current").symlink_to("/opt/fieldkit")
    shutil.copytree(HOST_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    return root


def verify(root: Path, files: list[Path]) -> subprocess.CompletedProcess:
    target = root / "etc/systemd/system"
    target.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy(f, target / f.name)
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}", *[f.name for f in files]],
        cwd=target, capture_output=True, text=True, timeout=60,
    )


def test_systemd_analyze_verify_is_clean(fake_root):
    files = sorted(UNITS.glob("*.service")) + sorted(UNITS.glob("*.target")) + sorted(UNITS.glob("*.path")) \
        + sorted(UNITS.glob("*.timer"))
    done = verify(fake_root, files)
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr


def test_verify_would_catch_a_broken_unit(fake_root, tmp_path):
    """The check above can fail: a misspelt key and a missing program are both reported."""
    broken = tmp_path / "fieldkit-broken.service"
    text = (UNITS / "fieldkit-pos.service").read_text()
    broken.write_text(text.replace("WatchdogSec=", "WatchdogSecs=").replace("/var/lib/fieldkit/releases/current/bin/fieldkit", "/opt/nothing/here"))
    done = verify(fake_root, [broken])
    output = done.stdout + done.stderr
    assert "WatchdogSecs" in output and "/opt/nothing/here" in output


@pytest.mark.parametrize("name", topics.SERVICES)
def test_each_service_has_a_hardened_notify_unit(name):
    unit = parse(UNITS / f"fieldkit-{name}.service")
    service = unit["Service"]
    assert service["ExecStart"] == f"/var/lib/fieldkit/releases/current/bin/fieldkit run {name}"
    # service.groups may run it in a group's process instead: then this unit is skipped, not failed
    assert service["ExecCondition"] == f"/var/lib/fieldkit/releases/current/bin/fieldkit run --check {name}"
    assert service["Type"] == "notify"
    assert int(service["WatchdogSec"]) >= 10
    assert service["Restart"] == "on-failure"
    assert service["User"] == "fieldkit"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    paths = service["ReadWritePaths"].split()  # and the USB drive's folder, for the replica (sync)
    assert paths[0] == "/var/lib/fieldkit" and set(paths[1:]) <= {"-/media/fieldkit-usb"}
    assert service["PrivateTmp"] == "yes"
    groups = set(service.get("SupplementaryGroups", "").split())
    assert GROUPS_BY_SERVICE.get(name, set()) <= groups
    after = unit["Unit"]["After"].split()
    assert {"mosquitto.service", "network.target", "fieldkit-boot.service"} <= set(after)


def test_the_target_starts_every_service_and_the_boot_steps():
    text = (UNITS / "fieldkit.target").read_text()
    wants = {w for line in text.splitlines() if line.startswith("Wants=") for w in line[6:].split()}
    expected = {f"fieldkit-{s}.service" for s in topics.SERVICES}
    expected |= {"fieldkit-boot.service", "fieldkit-hotspot.service", "fieldkit-slip.service", "mosquitto.service"}
    assert expected <= wants
    assert "WantedBy=multi-user.target" in text


def test_the_default_service_group_has_a_hardened_unit_the_target_starts(fake_root):
    """service.groups' default group runs as fieldkit-group@<first member>.service, with every member's devices."""
    from kit.settings import SETTINGS

    (default_groups,) = [s.default for s in SETTINGS if s.key == "service.groups"]
    template = UNITS / "fieldkit-group@.service"
    unit = parse(template)
    service = unit["Service"]
    assert service["ExecStart"] == "/var/lib/fieldkit/releases/current/bin/fieldkit run --group %i"
    assert service["ExecCondition"] == "/var/lib/fieldkit/releases/current/bin/fieldkit run --check --group %i"
    assert service["Type"] == "notify" and service["Restart"] == "on-failure" and int(service["WatchdogSec"]) >= 10
    assert service["User"] == "fieldkit" and service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    members = {m for group in default_groups for m in group}
    assert set().union(*(GROUPS_BY_SERVICE.get(m, set()) for m in members)) <= set(service["SupplementaryGroups"].split())
    text = (UNITS / "fieldkit.target").read_text()
    wants = {w for line in text.splitlines() if line.startswith("Wants=") for w in line[6:].split()}
    assert {f"fieldkit-group@{group[0]}.service" for group in default_groups} <= wants
    # the instance the target starts is a valid unit too
    target = fake_root / "etc/systemd/system"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, target / template.name)
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={fake_root}", "fieldkit-group@status.service"],
                          cwd=target, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr


def test_boot_runs_before_the_broker_and_the_hotspot_only_with_wifi():
    boot = parse(UNITS / "fieldkit-boot.service")
    assert boot["Service"]["Type"] == "oneshot"
    assert "mosquitto.service" in boot["Unit"]["Before"].split()
    assert boot["Service"]["ExecStart"] == "/var/lib/fieldkit/releases/current/bin/fieldkit appliance boot"
    hotspot = parse(UNITS / "fieldkit-hotspot.service")
    assert hotspot["Unit"]["ConditionPathExists"].startswith("/sys/class/net/wlan0")
    assert "sys-subsystem-net-devices-wlan0.device" in hotspot["Install"]["WantedBy"].split()
    slip = parse(UNITS / "fieldkit-slip.service")
    assert "fieldkit-pos.service" in slip["Unit"]["After"].split()


def test_polkit_rule_allows_power_off_clock_and_wifi_for_the_service_user_only():
    rule = (UNITS / "50-fieldkit.rules").read_text()
    assert 'subject.user !== "fieldkit"' in rule
    for action in ("org.freedesktop.login1.power-off", "org.freedesktop.timedate1.set-time",
                   "org.freedesktop.NetworkManager.network-control"):
        assert f'"{action}"' in rule
