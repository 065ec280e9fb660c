"""First boot, every boot, and the setup slip (through the real POS service and on the console)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from kit.appliance.boot import HOTSPOT_PASSWORD_FILE, apply_timezone, hotspot_credentials, run_boot
from kit.appliance.slip import console_text, publish_slip, setup_info, slip_payload, write_console
from kit.cli import cli
from kit.config import load_config
from kit.secrets import Secrets
from kit.testing import wait_for


@pytest.fixture
def fresh_kit(tmp_path, monkeypatch, mosquitto):
    """A kit as flashed: only the lead's fieldkit.toml, nothing generated yet."""
    home = tmp_path / "kit"
    home.mkdir()
    (home / "fieldkit.toml").write_text(
        '[kit]\nid = "door1"\nsite = "market"\ntimezone = "Europe/Berlin"\n\n'
        '[network]\nhotspot_ssid = "door1-kit"\n'
    )
    monkeypatch.setenv("FIELDKIT_HOME", str(home))
    monkeypatch.setenv("FIELDKIT_MQTT_PORT", str(mosquitto.port))
    return home


def test_first_boot_makes_secrets_then_later_boots_keep_them(fresh_kit, tmp_path):
    etc = tmp_path / "etc"
    first = run_boot(etc, echo=lambda _: None)
    config = load_config()
    assert first.first_boot and set(first.pins) == {"door", "merch", "lead"}
    assert Secrets(config.secrets_dir).initial_lead_pin() == first.pins["lead"]
    assert config.db_path.exists()
    ssid, password = hotspot_credentials(config, create=False)
    assert ssid == "door1-kit" and len(password) == 12
    assert oct((config.secrets_dir / HOTSPOT_PASSWORD_FILE).stat().st_mode & 0o777) == "0o600"
    broker_conf = (etc / "mosquitto/conf.d/fieldkit.conf").read_text()
    assert f"persistence_location {config.data_dir / 'mosquitto'}/" in broker_conf
    assert os.readlink(etc / "localtime") == "/usr/share/zoneinfo/Europe/Berlin"

    second = run_boot(etc, echo=lambda _: None)
    assert not second.first_boot and second.pins is None, "a reboot must not change the PINs"
    assert hotspot_credentials(load_config(), create=False) == (ssid, password)
    assert Secrets(config.secrets_dir).initial_lead_pin() == first.pins["lead"]


def test_a_changed_fieldkit_toml_is_applied_at_the_next_boot(fresh_kit, tmp_path):
    etc = tmp_path / "etc"
    run_boot(etc, echo=lambda _: None)
    assert "connection " not in (etc / "mosquitto/conf.d/fieldkit.conf").read_text()
    with (fresh_kit / "fieldkit.toml").open("a") as f:
        f.write('\n[site]\nhub_address = "10.42.0.1"\nmqtt_password = "site secret 1"\n')
    run_boot(etc, echo=lambda _: None)
    conf = (etc / "mosquitto/conf.d/fieldkit.conf").read_text()
    assert "address 10.42.0.1:1884" in conf and "topic fieldkit/site/market/# both 1" in conf


def test_a_byte_order_mark_from_a_windows_editor_is_tolerated(fresh_kit, tmp_path):
    toml = fresh_kit / "fieldkit.toml"
    toml.write_bytes(b"\xef\xbb\xbf" + toml.read_bytes())
    run_boot(tmp_path / "etc", echo=lambda _: None)
    assert load_config().kit_id == "door1"


def test_a_broken_fieldkit_toml_is_explained_on_the_console(fresh_kit, tmp_path):
    (fresh_kit / "fieldkit.toml").write_text('[kit]\nid = "door1"\ncolour = "red"\n')
    issue = tmp_path / "issue.d/fieldkit.issue"
    result = CliRunner().invoke(cli, ["appliance", "boot", "--etc", str(tmp_path / "etc"), "--issue", str(issue)])
    assert result.exit_code == 1
    assert "unknown setting 'kit.colour'" in result.output
    notice = issue.read_text()
    assert "unknown setting 'kit.colour'" in notice and "fix the file on the boot partition" in notice
    assert not Secrets(fresh_kit / "var/secrets").exists(), "nothing is generated from a broken file"


def test_a_too_short_hotspot_password_in_fieldkit_toml_is_refused(fresh_kit, tmp_path):
    with (fresh_kit / "fieldkit.toml").open("a") as f:
        f.write('hotspot_password = "short"\n')
    result = CliRunner().invoke(cli, ["appliance", "boot", "--etc", str(tmp_path / "etc"),
                                      "--issue", str(tmp_path / "issue")])
    assert result.exit_code == 1 and "8 to 63 characters" in result.output


def test_timezone_is_only_rewritten_when_it_changes(tmp_path):
    assert apply_timezone("Europe/Berlin", tmp_path)
    assert (tmp_path / "timezone").read_text() == "Europe/Berlin\n"
    assert not apply_timezone("Europe/Berlin", tmp_path)
    assert not apply_timezone("Not/AZone", tmp_path)


def test_the_slip_has_everything_a_lead_needs_until_they_set_their_pin(kit_env, monkeypatch):
    monkeypatch.setenv("FIELDKIT_NETWORK_HOTSPOT_PASSWORD", "hotspot secret")
    config = load_config()
    info = setup_info(config, *hotspot_credentials(config))
    payload = slip_payload(info)
    texts = [line.get("text", "") for line in payload["lines"]]
    assert any("fieldkit-test1" in t for t in texts) and any("hotspot secret" in t for t in texts)
    assert {"qr": "http://10.42.0.1:8080/"} in payload["lines"]
    assert kit_env["pins"]["lead"] in texts
    assert payload["lines"][-1] == {"cut": True}

    Secrets(config.secrets_dir).set_pin("lead", "4711")
    later = slip_payload(setup_info(config, *hotspot_credentials(config)))
    assert not any(kit_env["pins"]["lead"] in line.get("text", "") for line in later["lines"])
    assert any("Sign in with your lead PIN" in line.get("text", "") for line in later["lines"])


def test_the_console_shows_the_slip_with_a_qr_code(kit_env, tmp_path, monkeypatch):
    monkeypatch.setenv("FIELDKIT_WEB_PUBLIC_URL", "http://kit.local/")
    config = load_config()
    info = setup_info(config, *hotspot_credentials(config))
    issue, tty = tmp_path / "issue.d/fieldkit.issue", tmp_path / "tty1"
    tty.write_text("")
    written = write_console(info, issue, tty)
    assert written == [str(issue), str(tty)]
    text = issue.read_text()
    assert "fieldkit-test1" in text and "http://kit.local/" in text and kit_env["pins"]["lead"] in text
    assert "\u2588" in text or "\u2580" in text, "the address is drawn as a QR code in block characters"
    assert oct(issue.stat().st_mode & 0o777) == "0o600", "the lead PIN is not for every local user"
    assert tty.read_text() == console_text(info)


def test_the_real_pos_service_queues_the_slip(kit_env, tmp_path, ctx):
    """The slip goes through the POS print queue: the real pos service answers "queued"."""
    pos = subprocess.Popen([sys.executable, "-c", "from kit.cli import main; main()", "run", "pos"],
                           env=kit_env["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        config = load_config()
        payload = slip_payload(setup_info(config, *hotspot_credentials(config)))
        answers = []
        ctx.bus.subscribe("fieldkit/test1/pos/event/print", lambda _t, m: answers.append(m), qos=1)
        answer = publish_slip(ctx.bus, config.kit_id, payload, pos_timeout=30, answer_timeout=15)
        assert answer in ("queued", "printed"), answer
        wait_for(lambda: any(a.get("id") == payload["id"] and a.get("status") == "printed" for a in answers),
                 20, what="the simulated printer to print the slip")
    finally:
        pos.terminate()
        out = pos.communicate(timeout=15)[0].decode(errors="replace")
    assert "Traceback" not in out, out
