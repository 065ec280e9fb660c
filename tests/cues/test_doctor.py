"""`fieldkit doctor` says what is missing for cues, and how to fix it."""

from __future__ import annotations

import shutil

from cues.doctor import checks


def by_name(results):
    return {c.name: c for c in results}


def test_simulated_kit_is_fine(config):
    found = by_name(checks(config))
    assert found["DMX widget"].level == "OK" and "sim" in found["DMX widget"].message
    if shutil.which("mpv"):
        assert found["mpv"].level == "OK"


def test_a_missing_dmx_widget_and_lgpio_are_warnings_with_a_fix(config, tmp_path):
    real = config.with_values(**{"kit.simulate": False, "cues.dmx.backend": "enttec",
                                 "cues.dmx.port": str(tmp_path / "usb-ENTTEC-absent")})
    found = by_name(checks(real))
    assert found["DMX widget"].level == "WARN"
    assert "/dev/serial/by-id" in found["DMX widget"].fix
    assert found["GPIO (lgpio)"].level in ("OK", "WARN")
    (tmp_path / "usb-ENTTEC-absent").touch()
    assert by_name(checks(real))["DMX widget"].level == "OK"


def test_no_mpv_is_a_warning_that_says_what_to_install(config, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine where mpv is not installed
    found = by_name(checks(config.with_values(**{"kit.simulate": False, "cues.audio.backend": "mpv"})))
    assert found["mpv"].level == "WARN" and found["mpv"].fix == "apt-get install mpv"
