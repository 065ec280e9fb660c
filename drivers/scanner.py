"""Scan sources for the door, built from the configuration: cameras, serial (USB CDC) scanners,
keyboard-mode (HID) scanners, or simulated ones.

Check-in registers ``drivers.scanner.doctor_checks`` in ``checkin/feature.py`` (missing camera/evdev
libraries and absent devices show in ``fieldkit doctor``).

Interface (docs/scanners.md): ``open_scan_sources(config) -> list[ScanSource]`` builds every configured
source; with ``kit.simulate`` on that is a simulated camera and a simulated serial scanner. What a
source is and does is ``drivers.scan_source`` (the backends import that, never this factory).
"""

from __future__ import annotations

import logging
from pathlib import Path

from drivers.base import DeviceUnavailable
from drivers.scan_source import NOT_STARTED, OnCode, RepeatFilter, ScanSource

__all__ = ["NOT_STARTED", "OnCode", "RepeatFilter", "ScanSource", "doctor_checks", "open_camera_source",
           "open_hid_source", "open_scan_sources", "open_serial_source"]

log = logging.getLogger(__name__)


def _repeat_window(config) -> float:
    return float(config["checkin.scan.repeat_window_s"])


def open_camera_source(config) -> ScanSource | None:
    from drivers import camera

    name = config.backend("checkin.camera.backend")
    if name == "none":
        return None
    window = _repeat_window(config)
    size = (int(config["checkin.camera.width"]), int(config["checkin.camera.height"]))
    fps = float(config["checkin.camera.max_fps"])
    if name == "sim":
        from drivers.camera_sim import SimulatedCamera

        return SimulatedCamera(repeat_window_s=window, size=size)
    usb = camera.UsbCameraFrames(config["checkin.camera.device"], size)
    frames = {"picamera": lambda: camera.PicameraFrames(size), "usb": lambda: usb,
              "auto": lambda: camera.FirstCameraFound([camera.PicameraFrames(size), usb])}
    if name not in frames:
        raise DeviceUnavailable(f"checkin.camera.backend: unknown backend {name!r}")
    return camera.CameraScanSource("camera", frames[name](), repeat_window_s=window, max_fps=fps)


def open_serial_source(config) -> ScanSource | None:
    from drivers import scanner_serial

    name = config.backend("checkin.serial_scanner.backend")
    if name == "none":
        return None
    window = _repeat_window(config)
    max_line = int(config["checkin.serial_scanner.max_line"])
    if name == "sim":
        return scanner_serial.SimulatedSerialScanner(repeat_window_s=window, max_line=max_line)
    if name in ("auto", "serial"):
        return scanner_serial.SerialScanSource(
            "serial-scanner", config["checkin.serial_scanner.port"], baudrate=int(config["checkin.serial_scanner.baudrate"]),
            max_line=max_line, repeat_window_s=window)
    raise DeviceUnavailable(f"checkin.serial_scanner.backend: unknown backend {name!r}")


def open_hid_source(config) -> ScanSource | None:
    from drivers import scanner_hid

    name = config.backend("checkin.hid_scanner.backend")
    if name == "none":
        return None
    window = _repeat_window(config)
    layout = config["checkin.hid_scanner.layout"]
    pause = int(config["checkin.hid_scanner.end_pause_ms"]) / 1000
    if name == "sim":
        return scanner_hid.SimulatedHidScanner(layout=layout, end_pause_s=pause, repeat_window_s=window)
    if name in ("auto", "evdev"):
        return scanner_hid.HidScanSource("hid-scanner", config["checkin.hid_scanner.device"], layout=layout,
                                         end_pause_s=pause, repeat_window_s=window)
    raise DeviceUnavailable(f"checkin.hid_scanner.backend: unknown backend {name!r}")


def open_scan_sources(config) -> list[ScanSource]:
    """Every scan source the settings ask for (none started yet)."""
    sources = []
    for opener in (open_camera_source, open_serial_source, open_hid_source):
        source = opener(config)
        if source is not None:
            sources.append(source)
    return sources


def _camera_checks(config, name: str) -> tuple[list, bool]:
    """(checks, usable) for the configured camera."""
    from kit.doctor import python_module_check, warn

    picam = python_module_check("Pi camera library", "picamera2", "the Pi camera",
                                "sudo apt install python3-picamera2 (venv made with --system-site-packages)")
    webcam = python_module_check("webcam library", "cv2", "the USB webcam",
                                 "sudo apt install python3-opencv (or pip install opencv-python-headless)")
    device = str(config["checkin.camera.device"])
    webcam_present = device.isdigit() or Path(device).exists()
    absent = warn("camera", f"Camera not found at {device}",
                  "plug the webcam in, or set checkin.camera.backend = \"none\" if this door has none")
    if name == "picamera":
        return [picam], picam.level == "OK"
    if name == "usb":
        ok_lib = webcam.level == "OK"
        return [webcam] + ([] if webcam_present or not ok_lib else [absent]), ok_lib and webcam_present
    # auto: either camera will do; say what is missing only when neither can work
    if picam.level == "OK" or (webcam.level == "OK" and webcam_present):
        return [], True
    if webcam.level == "OK":
        return [absent], False
    return [warn("camera library", "neither picamera2 nor OpenCV is installed: no camera can be used",
                 f"{picam.fix}; or for a USB webcam {webcam.fix}")], False


def doctor_checks(config) -> list:
    """Missing camera/keyboard libraries (WARN with the fix) and configured devices that are absent."""
    from kit.doctor import fail, ok, python_module_check, warn

    decoder = python_module_check("QR decoder", "zxingcpp", "camera scanning", "pip install zxing-cpp")
    checks = [decoder if decoder.level == "OK" else fail(decoder.name, decoder.message, decoder.fix)]
    configured = usable = 0
    cam = config.backend("checkin.camera.backend")
    if cam == "sim":
        configured, usable = configured + 1, usable + 1
    elif cam != "none":
        found, cam_usable = _camera_checks(config, cam)
        checks += found
        configured, usable = configured + 1, usable + cam_usable
    serial = config.backend("checkin.serial_scanner.backend")
    if serial == "sim":
        configured, usable = configured + 1, usable + 1
    elif serial != "none":
        configured += 1
        port = config["checkin.serial_scanner.port"]
        if Path(port).exists():
            checks.append(ok("serial scanner", f"scanner port {port} is present"))
            usable += 1
        else:
            checks.append(warn("serial scanner", f"Scanner not found on {port} — check cable",
                               "plug it in, set checkin.serial_scanner.port (ls /dev/serial/by-id/), or set "
                               "checkin.serial_scanner.backend = \"none\""))
    hid = config.backend("checkin.hid_scanner.backend")
    if hid == "sim":
        configured, usable = configured + 1, usable + 1
    elif hid != "none":
        configured += 1
        lib = python_module_check("keyboard scanner library", "evdev", "the keyboard-mode scanner",
                                  "sudo apt install python3-evdev (venv made with --system-site-packages)")
        checks.append(lib)
        device = config["checkin.hid_scanner.device"]
        if not device or not Path(device).exists():
            checks.append(warn("keyboard scanner", f"Keyboard-mode scanner not found at {device or '(not set)'}",
                               "plug it in and set checkin.hid_scanner.device (ls /dev/input/by-id/)"))
        else:
            usable += lib.level == "OK"
    if configured and not usable:
        checks.append(fail("scan sources", "no camera or scanner is usable: tickets can only be found by name",
                           "plug in a scanner or camera (see the warnings above)"))
    elif not configured:
        checks.append(warn("scan sources", "every camera and scanner is switched off: tickets can only be "
                           "found by name", "set checkin.camera.backend or checkin.serial_scanner.backend"))
    return checks
