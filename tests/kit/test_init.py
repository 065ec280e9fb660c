"""fieldkit init: random PINs per role, idempotent, --force; a full disk or bad data dir is a clear error."""

import json
import os
import subprocess
import sys

import pytest

from kit.secrets import Secrets


def fieldkit(env, *args):
    return subprocess.run([sys.executable, "-m", "kit", *args], env=env, capture_output=True, text=True, timeout=60)


def test_init_is_idempotent_and_keeps_secrets(kit_env, config):
    secrets = Secrets(config.secrets_dir)
    before = secrets.pins_path.read_text()
    r = fieldkit(kit_env["env"], "init")
    assert r.returncode == 0 and "kept" in r.stdout
    assert secrets.pins_path.read_text() == before
    assert secrets.role_for_pin(kit_env["pins"]["door"]) == "door"
    assert secrets.role_for_pin(kit_env["pins"]["lead"]) == "lead"
    assert oct(secrets.pins_path.stat().st_mode & 0o777) == "0o600"
    assert kit_env["pins"]["lead"] not in before  # stored hashed
    assert secrets.initial_lead_pin() == kit_env["pins"]["lead"]


def test_force_makes_new_pins_and_a_lead_pin_of_their_own_stops_the_slip(kit_env, config):
    r = fieldkit(kit_env["env"], "init", "--force")
    new = {line.split()[0]: line.split()[1] for line in r.stdout.splitlines() if line.strip().split(" ")[0] in ("door", "merch", "lead")}
    secrets = Secrets(config.secrets_dir)
    assert secrets.role_for_pin(kit_env["pins"]["door"]) is None
    assert secrets.role_for_pin(new["door"]) == "door"
    secrets.set_pin("lead", "24681357")
    assert secrets.initial_lead_pin() is None
    assert secrets.role_for_pin("24681357") == "lead"


def test_data_dir_that_is_not_a_directory_is_a_clear_error(tmp_path):
    (tmp_path / "var").write_text("not a dir")
    r = fieldkit({**os.environ, "FIELDKIT_HOME": str(tmp_path)}, "init")
    assert r.returncode == 1 and "error:" in r.stderr and "Traceback" not in r.stderr


def test_full_disk_is_a_clear_error_and_keeps_what_was_stored(tmp_path, mosquitto):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.fail("this test needs to mount a small tmpfs (run the suite as root, as CI does)")
    try:
        env = {**os.environ, "FIELDKIT_HOME": str(mnt), "FIELDKIT_MQTT_PORT": str(mosquitto.port)}
        assert fieldkit(env, "init", "--kit-id", "full").returncode == 0
        writer = ("from kit.config import load_config\nfrom kit.service import make_context\n"
                  "ctx = make_context('w', load_config())\nimport sys\nn = int(sys.argv[1])\n"
                  "for i in range(n):\n    with ctx.db.transaction() as c:\n        ctx.ledger.append(c, 'test.x', {'i': i})\n")
        assert subprocess.run([sys.executable, "-c", writer, "50"], env=env).returncode == 0
        filler = mnt / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        for chunk in (65536, 512, 1):  # fill the disk to the last byte
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError:
                pass
        os.close(fd)
        r = subprocess.run([sys.executable, "-c", writer, "200000"], env=env, capture_output=True, text=True)
        assert r.returncode != 0 and ("full" in r.stderr.lower() or "disk i/o" in r.stderr.lower())
        r = fieldkit(env, "init", "--force")
        assert r.returncode == 1 and "disk is full" in r.stderr and "Traceback" not in r.stderr
        filler.unlink()
        r = fieldkit(env, "ledger", "verify")
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.startswith("OK ") and int(r.stdout.split()[1]) >= 50
        assert json.loads(fieldkit(env, "config", "show", "--json").stdout)["settings"]
    finally:
        subprocess.run(["umount", "-l", str(mnt)])
