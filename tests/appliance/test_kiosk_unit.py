"""fieldkit-kiosk.service and the decision it starts with: `systemd-analyze verify` clean, on only on a
Raspberry Pi with 1 GB and a screen (and saying why not), the browser told what the issue asks for."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kit.appliance import kiosk
from kit.appliance.kiosk import Host, decide

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "fieldkit-kiosk.service"
BOTH = {"cage": True, "chromium": True}


@pytest.fixture(scope="module")
def unit_root(tmp_path_factory) -> Path:
    if not shutil.which("systemd-analyze"):
        pytest.fail("systemd-analyze is missing: install the systemd package (.ci/apt-packages)")
    root = tmp_path_factory.mktemp("root")
    exe = root / "opt/fieldkit/bin/fieldkit"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    (root / "var/lib/fieldkit/releases").mkdir(parents=True)  # the units start the release slot `current` names
    (root / "var/lib/fieldkit/releases/current").symlink_to("/opt/fieldkit")
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    for unit in (ROOT / "systemd").glob("fieldkit*"):
        shutil.copy(unit, root / "etc/systemd/system" / unit.name)
    return root


def verify(root: Path, name: str) -> str:
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={root}", name],
                          cwd=root / "etc/systemd/system", capture_output=True, text=True, timeout=60)
    return (done.stdout + done.stderr).strip() + ("" if done.returncode == 0 else f"\nexit {done.returncode}")


def test_the_kiosk_unit_verifies_clean(unit_root):
    assert verify(unit_root, "fieldkit-kiosk.service") == ""


def test_verify_would_catch_a_mistake_in_it(unit_root):
    broken = unit_root / "etc/systemd/system/fieldkit-kiosk-broken.service"
    broken.write_text(UNIT.read_text().replace("ExecCondition=+", "ExecConditon=+")
                      .replace("ExecStart=/var/lib/fieldkit/releases/current", "ExecStart=/opt/nothing"))
    out = verify(unit_root, broken.name)
    assert "ExecConditon" in out and "/opt/nothing" in out


def test_the_unit_checks_as_root_then_runs_as_its_own_user():
    text = UNIT.read_text()
    assert "ExecCondition=+/var/lib/fieldkit/releases/current/bin/fieldkit appliance kiosk --check --env /run/fieldkit-kiosk.env" in text
    assert "EnvironmentFile=-/run/fieldkit-kiosk.env" in text
    assert "User=fieldkit-kiosk" in text and "User=fieldkit\n" not in text  # not the user holding the secrets
    assert "Restart=always" in text and "WantedBy=fieldkit.target" in text


def test_the_browser_is_cage_and_chromium_kiosk_with_sound_and_no_pinch():
    argv = kiosk.command({kiosk.ENV_URL: "http://127.0.0.1:8123/kiosk", "HOME": "/var/lib/fieldkit-kiosk"})
    assert argv[:3] == ["cage", "-d", "--"] and argv[3] == "chromium"
    for flag in ("--kiosk", "--ozone-platform=wayland", "--autoplay-policy=no-user-gesture-required",
                 "--disable-pinch", "--user-data-dir=/var/lib/fieldkit-kiosk/chromium"):
        assert flag in argv
    url = argv[-1]
    assert url.startswith("file://") and url.split("?")[0].endswith("kit/web/static/kiosk-starting.html")
    assert "to=http%3A%2F%2F127.0.0.1%3A8123%2Fkiosk" in url
    assert Path(url[len("file://"):].split("?")[0]).is_file()


@pytest.mark.parametrize(("setting", "host", "on", "words"), [
    ("auto", Host("Raspberry Pi 4 Model B Rev 1.5", 906, ["card1-HDMI-A-1"], BOTH), True, "screen card1-HDMI-A-1"),
    ("auto", Host("Raspberry Pi 3 Model B Plus Rev 1.3", 921, ["card1-DSI-1"], BOTH), True, "DSI"),
    ("auto", Host("Raspberry Pi Zero 2 W Rev 1.0", 427, ["card1-HDMI-A-1"], BOTH), False, "427 MiB"),
    ("auto", Host("Raspberry Pi 4 Model B Rev 1.5", 3797, [], BOTH), False, "no screen connected"),
    ("auto", Host("", 16000, ["card0-eDP-1"], BOTH), False, "not a Raspberry Pi"),
    ("on", Host("", 16000, [], BOTH), True, "kiosk.enabled = \"on\""),
    ("on", Host("", 16000, [], {"cage": False, "chromium": True}), False, "cage not installed"),
    ("off", Host("Raspberry Pi 5 Model B Rev 1.0", 7900, ["card1-HDMI-A-1"], BOTH), False, "kiosk.enabled = \"off\""),
])
def test_on_only_on_a_pi_with_1_gb_and_a_screen_and_says_why(setting, host, on, words):
    decision = decide(setting, host)
    assert decision.on is on and words in decision.reason, decision.reason


def test_the_host_is_read_from_proc_and_sys(tmp_path):
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(b"Raspberry Pi 4 Model B Rev 1.5\0")
    (tmp_path / "proc/meminfo").write_text("MemTotal:         927804 kB\nMemFree:  1 kB\n")
    for name, status in (("card1-HDMI-A-1", "connected"), ("card1-HDMI-A-2", "disconnected")):
        (tmp_path / "sys/class/drm" / name).mkdir(parents=True)
        (tmp_path / "sys/class/drm" / name / "status").write_text(status + "\n")
    host = Host.read(tmp_path)
    assert (host.model, host.ram_mib, host.screens) == ("Raspberry Pi 4 Model B Rev 1.5", 906, ["card1-HDMI-A-1"])


def run_check(env: dict, tmp_path: Path) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path / "run" / "fieldkit-kiosk.env"
    done = subprocess.run([sys.executable, "-m", "kit", "appliance", "kiosk", "--check", "--env", str(out)],
                          env=env, capture_output=True, text=True, timeout=60)
    return done, out


def test_check_stays_off_here_and_says_why(kit_env, tmp_path):
    done, out = run_check(kit_env["env"], tmp_path)
    assert done.returncode == 1  # ExecCondition: the unit is skipped, not failed
    assert "kiosk off: not a Raspberry Pi" in done.stdout
    assert not out.exists()
    doctor = subprocess.run([sys.executable, "-m", "kit", "doctor"], env=kit_env["env"], capture_output=True,
                            text=True, timeout=120)
    assert "kiosk" in doctor.stdout and "not a Raspberry Pi" in doctor.stdout


def test_check_forced_on_tells_the_browser_the_kits_port(kit_env, tmp_path):
    done, out = run_check({**kit_env["env"], "FIELDKIT_KIOSK_ENABLED": "on", "FIELDKIT_WEB_PORT": "8123"}, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert out.read_text() == f"{kiosk.ENV_URL}=http://127.0.0.1:8123/kiosk\n"


def test_a_broken_fieldkit_toml_is_shown_on_the_screen(kit_env, tmp_path, monkeypatch):
    """The kit cannot start then; on a Pi the kiosk still comes up, with the reason on the starting page."""
    monkeypatch.setenv("FIELDKIT_WEB_PORT", "eighty")
    out = tmp_path / "kiosk.env"
    pi = Host("Raspberry Pi 4 Model B Rev 1.5", 3797, ["card1-HDMI-A-1"], BOTH)
    decision = kiosk.check(out, host=pi)
    assert decision.on
    env = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert "cannot start" in env[kiosk.ENV_NOTE] and "FIELDKIT_WEB_PORT" in env[kiosk.ENV_NOTE]
    url = kiosk.starting_url(env[kiosk.ENV_URL], "Field Kit cannot start")
    assert "note=Field%20Kit%20cannot%20start" in url
