"""``fieldkit doctor`` checks for cues: the DMX widget, mpv, the GPIO library on a Pi."""

from __future__ import annotations

import shutil
from pathlib import Path

from kit.doctor import Check, ok, python_module_check, warn


def checks(config) -> list[Check]:
    results: list[Check] = []
    dmx = config.backend("cues.dmx.backend")
    port = config["cues.dmx.port"]
    if dmx in ("enttec", "auto"):
        if Path(port).exists():
            results.append(ok("DMX widget", f"ENTTEC DMX USB Pro at {port}"))
        else:
            results.append(warn("DMX widget", f"no DMX widget at {port}: DMX cues will not light anything",
                                "plug in the DMX USB Pro and set cues.dmx.port to its /dev/serial/by-id/... path, "
                                "or set cues.dmx.backend = \"none\""))
    elif dmx == "artnet":
        results.append(ok("DMX widget", f"Art-Net to {config['cues.artnet.host']}:{config['cues.artnet.port']}"))
    else:
        results.append(ok("DMX widget", f"DMX backend is {dmx}"))
    if config.backend("cues.audio.backend") != "none":
        if shutil.which("mpv"):
            results.append(ok("mpv", f"mpv at {shutil.which('mpv')}"))
        else:
            results.append(warn("mpv", "mpv is not installed: sound cues stay silent (lights still run)",
                                "apt-get install mpv"))
    if config.backend("cues.gpio.backend") in ("gpio", "auto"):
        results.append(python_module_check("GPIO (lgpio)", "lgpio", "GPIO for cue lights and sensors",
                                           "on the Pi: apt-get install python3-lgpio (venv with --system-site-packages)"))
    return results
