"""personalise.sh on small disk images made with sfdisk and mtools, as a lead runs it on a laptop."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tomllib
from pathlib import Path

import pytest

from kit.config import load_config

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "image-build/personalise.sh"
BOOT_START = 2048  # sectors, as Raspberry Pi OS images start their boot partition at 4 MiB (8192) or 1 MiB
ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
GOOD = ["--kit-id", "door1", "--site", "market", "--hotspot-ssid", "door1-kit", "--hotspot-password", "long enough 1"]


def make_image(path: Path, table: str, fat: bool = True) -> Path:
    """A 24 MB disk image: a partition table from ``table`` (sfdisk script), a FAT file system in partition 1."""
    with open(path, "wb") as f:
        f.truncate(24 * 1024 * 1024)
    if table:
        subprocess.run(["sfdisk", "-q", str(path)], input=table, text=True, check=True, capture_output=True)
    if fat:
        subprocess.run(["mformat", "-i", f"{path}@@{BOOT_START * 512}", "-T", "16384", "-h", "64", "-s", "32",
                        "-v", "BOOTFS", "::"], check=True, env=ENV, capture_output=True)
        (path.parent / "config.txt").write_text("arm_64bit=1\n")
        subprocess.run(["mcopy", "-i", f"{path}@@{BOOT_START * 512}", str(path.parent / "config.txt"), "::config.txt"],
                       check=True, env=ENV, capture_output=True)
    return path


PI_TABLE = f"label: dos\nstart={BOOT_START}, size=16384, type=c, bootable\nstart=18432, type=83\n"


@pytest.fixture
def image(tmp_path) -> Path:
    return make_image(tmp_path / "fieldkit.img", PI_TABLE)


def personalise(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=ENV, timeout=60)


def read_boot_file(image: Path, name: str) -> str:
    done = subprocess.run(["mtype", "-i", f"{image}@@{BOOT_START * 512}", f"::{name}"],
                          capture_output=True, text=True, env=ENV, check=True)
    return done.stdout


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_writes_fieldkit_toml_that_the_kit_loads(image, tmp_path):
    done = personalise(str(image), *GOOD, "--hub", "--site-password", "site secret 1",
                       "--uplink-ssid", "Home WiFi", "--uplink-password", 'qu"ote\\back',
                       "--hq-url", "https://hq.example.org", "--hq-token", "tok-123",
                       "--timezone", "Europe/Berlin", "--event", "Summer Fair", "--currency", "GBP")
    assert done.returncode == 0, done.stderr
    assert "door1" in done.stdout
    text = read_boot_file(image, "fieldkit.toml")
    assert read_boot_file(image, "config.txt") == "arm_64bit=1\n", "the rest of the boot partition is untouched"
    (tmp_path / "fieldkit.toml").write_text(text)
    # The kit's own loader reads the file: every key written is a declared setting with the right type.
    config = load_config({"FIELDKIT_HOME": str(tmp_path)})
    assert config.kit_id == "door1" and config.site == "market"
    assert config["kit.timezone"] == "Europe/Berlin" and config["kit.event"] == "Summer Fair"
    assert config["kit.currency"] == "GBP"
    assert config["network.hotspot_ssid"] == "door1-kit"
    assert config["network.hotspot_password"] == "long enough 1"
    assert config["network.uplink_ssid"] == "Home WiFi"
    assert config["network.uplink_password"] == 'qu"ote\\back'
    assert config["site.hub"] is True and config["site.mqtt_password"] == "site secret 1"
    assert config["sync.hq_url"] == "https://hq.example.org" and config["sync.hq_token"] == "tok-123"


def test_running_again_replaces_the_settings(image):
    assert personalise(str(image), *GOOD).returncode == 0
    args = GOOD.copy()
    args[args.index("door1")] = "door2"
    assert personalise(str(image), *args, "--hub-address", "10.42.0.1", "--site-password", "site secret 1").returncode == 0
    settings = tomllib.loads(read_boot_file(image, "fieldkit.toml"))
    assert settings["kit"]["id"] == "door2"
    assert settings["site"] == {"hub": False, "hub_address": "10.42.0.1", "mqtt_password": "site secret 1"}


def test_a_gpt_image_works_too(tmp_path):
    table = f"label: gpt\nstart={BOOT_START}, size=16384, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nstart=18432, size=20000, type=L\n"
    image = make_image(tmp_path / "gpt.img", table)
    assert personalise(str(image), *GOOD).returncode == 0
    assert tomllib.loads(read_boot_file(image, "fieldkit.toml"))["kit"]["id"] == "door1"


@pytest.mark.parametrize("args, message", [
    (["--hotspot-password", "short"], "--hotspot-password must be 8 to 63 characters long (got 5)"),
    (["--hotspot-password", "x" * 64], "must be 8 to 63 characters"),
    (["--uplink-ssid", "Home", "--uplink-password", "1234567"], "--uplink-password must be 8 to 63"),
    (["--colour", "red"], "unknown option --colour"),
    (["--kit-id", "door 1"], "--kit-id 'door 1' may only use letters, digits"),
    (["--timezone", "Mars/Olympus"], "not a known time zone"),
    (["--hq-url", "https://hq.example.org"], "--hq-url and --hq-token go together"),
    (["--hub", "--hub-address", "10.0.0.1"], "exclude each other"),
    (["--hub-address", "10.0.0.1"], "--hub-address needs --site-password"),
    (["--currency", "euro"], "3-letter ISO code"),
])
def test_bad_input_is_refused_and_the_image_untouched(image, args, message):
    # Later options win over the good defaults, as in any shell script.
    before = digest(image)
    done = personalise(str(image), *GOOD, *args)
    assert done.returncode != 0
    assert message in done.stderr
    assert "the image was not changed" in done.stderr
    assert digest(image) == before


def test_a_missing_required_option_is_refused(image):
    before = digest(image)
    done = personalise(str(image), "--kit-id", "door1", "--site", "market", "--hotspot-ssid", "kit")
    assert done.returncode != 0 and "--hotspot-password is required" in done.stderr
    assert digest(image) == before


def test_an_image_without_a_boot_partition_is_refused(tmp_path):
    linux_only = make_image(tmp_path / "linux.img", "label: dos\nstart=2048, type=83\n", fat=False)
    no_table = make_image(tmp_path / "blank.img", "", fat=False)
    not_formatted = make_image(tmp_path / "raw.img", PI_TABLE, fat=False)
    for image, message in ((linux_only, "has no FAT boot partition"), (no_table, "has no partition table"),
                           (not_formatted, "does not hold a FAT file system")):
        before = digest(image)
        done = personalise(str(image), *GOOD)
        assert done.returncode != 0, image
        assert message in done.stderr, done.stderr
        assert digest(image) == before


def test_a_missing_image_is_refused(tmp_path):
    done = personalise(str(tmp_path / "nope.img"), *GOOD)
    assert done.returncode != 0 and "no such image file" in done.stderr


def test_help_lists_every_option():
    done = personalise("--help")
    assert done.returncode == 0
    for option in ("--kit-id", "--site", "--hub", "--hotspot-ssid", "--hotspot-password", "--uplink-ssid",
                   "--uplink-password", "--hq-url", "--hq-token", "--timezone"):
        assert option in done.stdout
