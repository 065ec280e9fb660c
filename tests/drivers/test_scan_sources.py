"""open_scan_sources: the door's sources from settings, the simulated camera end to end, doctor checks."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image

from drivers.scan_source import RepeatFilter
from drivers.scanner import doctor_checks, open_scan_sources
from kit.config import load_config
from kit.testing import wait_for


def make_config(tmp_path, simulate: bool, **values):
    env = {"FIELDKIT_HOME": str(tmp_path), "FIELDKIT_KIT_SIMULATE": "1" if simulate else "0"}
    return load_config(env).with_values(**values)


class Codes(list):
    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()

    def __call__(self, payload, source):
        with self.lock:
            self.append((payload, source))


@pytest.fixture
def sim_sources(tmp_path):
    sources = open_scan_sources(make_config(tmp_path, True, checkin__scan__repeat_window_s=0.6))
    codes = Codes()
    for s in sources:
        s.start(codes)
    yield {s.name: s for s in sources}, codes
    for s in sources:
        s.stop()


def test_simulation_opens_a_camera_and_a_serial_scanner_that_read_at_once(sim_sources):
    sources, codes = sim_sources
    assert set(sources) == {"camera", "serial-scanner"}
    wait_for(lambda: all(s.status() == "ok" for s in sources.values()), 5, what="sources ok")
    sources["camera"].show("PHONE-AT-CAMERA")
    sources["serial-scanner"].show("PAPER-AT-SCANNER")
    wait_for(lambda: len(codes) == 2, 5, what="two codes")
    assert sorted(codes) == [("PAPER-AT-SCANNER", "serial-scanner"), ("PHONE-AT-CAMERA", "camera")]


def test_a_phone_held_under_the_camera_is_reported_once_until_taken_away(sim_sources):
    sources, codes = sim_sources
    camera = sources["camera"]
    camera.show("HELD-TICKET", seconds=1.5)  # ~15 frames showing the same code
    wait_for(lambda: camera.frames_decoded > 14 and camera.sim._showing is None, 5, what="held for 1.5 s")
    assert codes == [("HELD-TICKET", "camera")]
    threading.Event().wait(0.7)  # taken away longer than the 0.6 s window
    camera.show("HELD-TICKET", seconds=0.5)
    wait_for(lambda: len(codes) == 2, 5, what="shown again after the window")


def test_camera_preview_is_a_small_jpeg_with_the_code_outlined(sim_sources):
    sources, codes = sim_sources
    camera = sources["camera"]
    wait_for(lambda: camera.preview_jpeg() is not None, 5, what="a frame")
    plain = Image.open(io.BytesIO(camera.preview_jpeg())).convert("RGB")
    assert plain.size == (320, 240)
    camera.show("OUTLINED", seconds=3)
    wait_for(lambda: codes, 5, what="detection")
    outlined = np.asarray(Image.open(io.BytesIO(camera.preview_jpeg())).convert("RGB")).astype(int)
    green = (outlined[:, :, 1] > 180) & (outlined[:, :, 0] < 90) & (outlined[:, :, 2] < 120)
    assert green.sum() > 100  # the outline: strongly green pixels, which a grey frame never has
    assert not ((np.asarray(plain)[:, :, 1].astype(int) - np.asarray(plain)[:, :, 0]) > 80).any()
    assert sources["serial-scanner"].preview_jpeg() is None


@pytest.mark.parametrize("order", ["bgr", "rgb"])
def test_colour_previews_keep_their_colours(order):
    from drivers.camera import render_preview

    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, :320, 2 if order == "bgr" else 0] = 255  # left half red, in the camera's channel order
    preview = np.asarray(Image.open(io.BytesIO(render_preview(frame, [], order=order))).convert("RGB")).astype(int)
    left, right = preview[120, 60], preview[120, 260]
    assert left[0] > 200 and left[1] < 60 and left[2] < 60
    assert right.max() < 60


def test_unplugged_camera_reports_and_comes_back(sim_sources):
    sources, codes = sim_sources
    camera = sources["camera"]
    wait_for(lambda: camera.status() == "ok", 5)
    camera.sim.plugged_in = False
    wait_for(lambda: "Camera" in camera.status() and "cable" in camera.status(), 5, what="camera missing")
    wait_for(lambda: camera.preview_jpeg() is None, 5, what="no stale picture in the preview")
    camera.sim.plugged_in = True
    wait_for(lambda: camera.status() == "ok", 10, what="camera back")
    camera.show("AFTER-REPLUG")
    wait_for(lambda: ("AFTER-REPLUG", "camera") in codes, 5, what="code after replug")


def test_settings_choose_sources(tmp_path):
    none = make_config(tmp_path, True, checkin__camera__backend="none", checkin__serial_scanner__backend="none")
    assert open_scan_sources(none) == []
    with_hid = make_config(tmp_path, True, checkin__hid_scanner__backend="evdev")
    assert [s.name for s in open_scan_sources(with_hid)] == ["camera", "serial-scanner", "hid-scanner"]
    real = make_config(tmp_path, False, checkin__camera__backend="usb", checkin__camera__device=str(tmp_path / "video9"),
                       checkin__serial_scanner__port=str(tmp_path / "ttyACM9"))
    sources = open_scan_sources(real)
    assert [type(s).__name__ for s in sources] == ["CameraScanSource", "SerialScanSource"]
    for s in sources:
        s.start(lambda *_: None)
    try:
        wait_for(lambda: all(s.status() != "not started" for s in sources), 5)
        assert sources[0].status() == f"Camera not found at {tmp_path / 'video9'} — check the USB cable"
        assert sources[1].status() == f"Scanner not found on {tmp_path / 'ttyACM9'} — check cable"
    finally:
        for s in sources:
            s.stop()


def test_auto_camera_takes_whichever_camera_is_there(tmp_path):
    import importlib.util

    device = tmp_path / "video3"
    config = make_config(tmp_path, False, checkin__camera__backend="auto", checkin__camera__device=str(device),
                         checkin__serial_scanner__backend="none")
    [camera] = open_scan_sources(config)
    camera.start(lambda *_: None)
    try:
        wait_for(lambda: camera.status() != "not started", 5)
        expected = f"Camera not found at {device} — check the USB cable"
        if importlib.util.find_spec("picamera2") is None:  # this machine: no Pi camera library, no webcam
            assert camera.status() == expected
        else:
            assert expected in camera.status()
    finally:
        camera.stop()
    checks = {c.name: c for c in doctor_checks(config)}
    assert checks["camera"].level == "WARN" and checks["scan sources"].level == "FAIL"


def test_doctor_is_quiet_when_simulating_and_warns_when_everything_is_off(tmp_path):
    checks = doctor_checks(make_config(tmp_path, True))
    assert [c.level for c in checks] == ["OK"]
    off = make_config(tmp_path, False, checkin__camera__backend="none", checkin__serial_scanner__backend="none")
    assert [(c.name, c.level) for c in doctor_checks(off)] == [("QR decoder", "OK"), ("scan sources", "WARN")]


def test_doctor_warns_about_absent_devices_and_missing_libraries(tmp_path):
    port = tmp_path / "ttyACM7"
    config = make_config(tmp_path, False, checkin__camera__backend="none", checkin__serial_scanner__port=str(port),
                         checkin__hid_scanner__backend="evdev", checkin__hid_scanner__device="")
    checks = {c.name: c for c in doctor_checks(config)}
    assert checks["serial scanner"].level == "WARN"
    assert str(port) in checks["serial scanner"].message and "dev/serial/by-id" in checks["serial scanner"].fix
    assert checks["keyboard scanner library"].level in ("OK", "WARN")
    if checks["keyboard scanner library"].level == "WARN":
        assert "python3-evdev" in checks["keyboard scanner library"].fix
    assert checks["keyboard scanner"].level == "WARN"
    assert checks["scan sources"].level == "FAIL"  # nothing at all to scan with
    port.touch()
    checks = {c.name: c for c in doctor_checks(config)}
    assert checks["serial scanner"].level == "OK" and "scan sources" not in checks
    assert checks["QR decoder"].level == "OK"


def test_repeat_filter_restarts_the_window_on_every_sighting():
    now = [0.0]
    repeats = RepeatFilter(2.0, clock=lambda: now[0])
    seen = []
    for t in (0.0, 1.0, 2.5, 4.0, 6.1, 6.2):
        now[0] = t
        seen.append(repeats.accept("A"))
    assert seen == [True, False, False, False, True, False]
    assert repeats.accept("B")


def test_a_deliberate_new_showing_is_reported_even_within_the_repeat_window():
    """The demo panel's "duplicate" button shows the ticket just admitted: the door must answer again."""
    from drivers.scan_source import RepeatFilter

    now = [100.0]
    f = RepeatFilter(2.0, clock=lambda: now[0])
    assert f.accept("T1")
    now[0] += 0.5
    assert not f.accept("T1")  # the same phone still under the camera
    f.forget("T1")
    assert f.accept("T1")  # shown again on purpose


def test_scan_backends_import_the_interface_not_the_factory():
    """The factory picks backends; a backend importing it back would be an import circle."""
    import subprocess
    import sys

    code = ("import sys, drivers.scanner_serial, drivers.scanner_hid, drivers.camera, drivers.camera_sim;"
            "print('drivers.scanner' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
