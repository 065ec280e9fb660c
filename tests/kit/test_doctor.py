"""fieldkit doctor: each check OK/WARN/FAIL with a fix; exit 1 on any FAIL; Pi libraries are WARNs."""

import json
import subprocess
import sys


def doctor(env, *args):
    return subprocess.run([sys.executable, "-m", "kit", "doctor", *args], env=env, capture_output=True, text=True, timeout=60)


def test_doctor_json_lists_its_checks_and_passes_on_a_healthy_kit(kit_env):
    r = doctor(kit_env["env"], "--json")
    checks = json.loads(r.stdout)
    names = {c["name"] for c in checks}
    assert {"config", "data dir", "free disk", "database", "broker", "clock", "status LED"} <= names
    assert all(c["level"] in ("OK", "WARN", "FAIL") for c in checks)
    assert all(c["fix"] for c in checks if c["level"] != "OK"), "every problem needs a fix"
    fails = [c for c in checks if c["level"] == "FAIL"]
    assert r.returncode == (1 if fails else 0)
    assert not [c for c in fails if c["name"] in ("config", "data dir", "database", "broker")]


def test_doctor_fails_when_the_broker_is_down(kit_env):
    from kit.testing import free_port

    env = {**kit_env["env"], "FIELDKIT_MQTT_PORT": str(free_port())}
    r = doctor(env)
    assert r.returncode == 1
    assert "FAIL" in r.stdout and "no MQTT broker" in r.stdout and "fix:" in r.stdout


def test_doctor_reports_a_broken_config_instead_of_crashing(kit_env):
    (kit_env["home"] / "kit.toml").write_text("[web\nport=1")
    r = doctor(kit_env["env"], "--json")
    checks = json.loads(r.stdout)
    assert r.returncode == 1 and checks[0]["name"] == "config" and "not valid TOML" in checks[0]["message"]


def test_missing_pi_library_is_a_warning_not_an_import_error():
    from kit.doctor import python_module_check

    check = python_module_check("camera", "picamera2_is_not_here", "the Pi camera", "apt install python3-picamera2")
    assert check.level == "WARN" and check.fix == "apt install python3-picamera2"
