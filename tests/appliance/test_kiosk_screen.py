"""The kiosk itself, on a real kit web server, with Debian's chromium in kiosk mode on a real display server.

Two displays, because Debian 12's cage 0.1.4 (wlroots 0.15) runs headless here but presents only its
client's first frame with the pixman renderer and no GPU (the headless output's commits fail the output
test, so frame callbacks stop and chromium never resizes or repaints):

* under cage (``WLR_BACKENDS=headless WLR_RENDERER=pixman``) the unit's exact command line
  (kit/appliance/kiosk.py ``command()``: cage, chromium ``--kiosk --ozone-platform=wayland`` on the local
  starting page): the browser reaches the kit on its own and gets its device cookie; grim's screenshot of
  the output is kept when cage presents a frame (under load it often presents none: the test says so);
* under Xvfb at 800x480 (the 7-inch screen), the same chromium flags but ``--ozone-platform=x11``, driven
  over the DevTools protocol like a finger on the touch screen: setup slip with the lead's first PIN, then
  the PIN pad, a door PIN, the door page; the web server stopped: the local "starting…" page (never a
  browser error); the web server back: the door page again, still signed in.

Screenshots are kept in the folder printed at the start (FIELDKIT_ARTEFACTS, else a temporary folder).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from kit.appliance import kiosk
from kit.testing import free_port, stop_process_group, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.system, pytest.mark.slow]
BROWSER_TEST_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]  # root in a container, no GPU


@pytest.fixture(scope="module")
def artefacts() -> Path:
    base = Path(os.environ.get("FIELDKIT_ARTEFACTS") or tempfile.mkdtemp(prefix="fieldkit-artefacts-"))
    folder = base / "kiosk"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nkiosk screenshots: {folder}")
    return folder


def need(*programs: str) -> None:
    missing = [p for p in programs if not shutil.which(p)]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: apt-get install {' '.join(missing)} (.ci/apt-packages)")


def terminals(kit) -> list[tuple]:
    db = next(kit.home.rglob("kit.db"))
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id, role FROM kit_kiosk_terminals ORDER BY id").fetchall()


def colours(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as im:
        return len(im.convert("RGB").getcolors(1 << 24) or [])


def as_unprivileged() -> list[str]:
    """cage refuses to run as root: when the tests are root, run it (and grim) as nobody."""
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] if os.geteuid() == 0 else []


def shared_dir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o700)
    if os.geteuid() == 0:
        shutil.chown(path, "nobody", "nogroup")
    return path


def test_cage_headless_runs_the_units_browser_which_reaches_the_kit(kit_factory, artefacts):
    need("cage", "grim", "chromium", "Xwayland")
    kit = kit_factory(["web", "status"])
    attempts = []
    for attempt in range(1, 4):  # see the module's docstring: this cage presents chromium's first frames or none
        seen, log = cage_once(kit, artefacts, attempt)
        attempts.append(f"attempt {attempt}: {seen}")
        if seen == "the slip":
            break
    print("\n".join(attempts))
    # What this test proves: the unit's exact command under cage starts chromium, which finds the kit on its
    # own and gets its device cookie (no PIN typed yet), every time.
    assert terminals(kit) and terminals(kit)[0][1] is None
    assert all("the kit saw the browser" in a or a.endswith("the slip") for a in attempts), f"{attempts}; {log[-2000:]}"
    if not attempts[-1].endswith("the slip"):
        # Debian 12's cage often presents no frame at all under load (module docstring): the screenshot of the
        # kiosk page is then the Xvfb test's below, which asserts what is on screen. Said, not hidden.
        print(f"NOT CAPTURED: cage presented no frame in {len(attempts)} starts (wlroots 0.15 headless, pixman); "
              "the kiosk's screen is checked under Xvfb in test_the_kiosk_on_the_7_inch_screen_...")


def cage_once(kit, artefacts: Path, attempt: int) -> tuple[str, str]:
    """One start of the unit's command under headless cage; what grim saw of its output."""
    runtime, home = shared_dir("fk-kiosk-run-"), shared_dir("fk-kiosk-home-")
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime),
           "WLR_BACKENDS": "headless", "WLR_RENDERER": "pixman", "WLR_LIBINPUT_NO_DEVICES": "1",
           kiosk.ENV_URL: kit.url + "kiosk"}
    argv = kiosk.command(env, extra=BROWSER_TEST_FLAGS)
    kiosk.prepare_profile(kiosk.profile_dir(env))
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "nobody:nogroup", str(home)], check=True)
    log_path = artefacts / f"cage-{attempt}.log"
    before = len(terminals(kit))
    with log_path.open("w") as log:
        cage = subprocess.Popen(as_unprivileged() + ["env", *[f"{k}={v}" for k, v in env.items()], *argv],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    seen = "nothing"
    try:
        # The starting page (file:) found the kit and went to /kiosk: the kit gave this browser a terminal.
        wait_for(lambda: len(terminals(kit)) > before, 30, 0.3, what="the kiosk's browser at the kit's /kiosk")
        assert cage.poll() is None, log_path.read_text()[-3000:]
        seen = "the kit saw the browser, no frame"
        shot = runtime / "kiosk.png"
        grab = as_unprivileged() + ["env", f"XDG_RUNTIME_DIR={runtime}", "WAYLAND_DISPLAY=wayland-0", "grim", str(shot)]
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            if subprocess.run(grab, capture_output=True, timeout=10).returncode == 0 and colours(shot) > 20:
                seen = "the slip"
                break
            time.sleep(0.5)
        if shot.exists():
            shutil.copy(shot, artefacts / f"cage-headless-{attempt}.png")
    finally:
        stop_process_group(cage)
        shutil.rmtree(runtime, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
    return seen, log_path.read_text()


def start_web(kit) -> subprocess.Popen:
    """The same kit's web server again (same home, same port), as systemd restarts fieldkit-web."""
    args = [sys.executable, "-m", "kit", "up", "--simulate", "--only", "web", "--only", "status"]
    return subprocess.Popen(args, env=kit.env, stdout=kit.log_path.open("a"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def grab_x(display: str, path: Path) -> Path:
    from PIL import ImageGrab

    ImageGrab.grab(xdisplay=display).save(path)
    return path


def test_the_kiosk_on_the_7_inch_screen_slip_pin_page_and_restart(kit_factory, artefacts, tmp_path, playwright_session):
    need("Xvfb", "chromium")

    kit = kit_factory(["web", "status"])
    display = f":{free_port() % 500 + 100}"
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "800x480x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    cdp = free_port()
    flags = [f for f in kiosk.CHROMIUM_FLAGS if not f.startswith("--ozone-platform")]
    argv = ["chromium", *flags, "--ozone-platform=x11", f"--user-data-dir={tmp_path / 'profile'}",
            "--window-position=0,0", "--window-size=800,480", f"--remote-debugging-port={cdp}",
            *BROWSER_TEST_FLAGS, kiosk.starting_url(kit.url + "kiosk")]
    kiosk.prepare_profile(tmp_path / "profile")  # as `fieldkit appliance kiosk` does before cage starts
    browser_proc = None
    web_again = None
    try:
        wait_for(lambda: Path(f"/tmp/.X11-unix/X{display[1:]}").exists(), 10, 0.1, what="Xvfb")
        browser_proc = subprocess.Popen(argv, env={**os.environ, "DISPLAY": display}, stdout=subprocess.DEVNULL,
                                        stderr=(tmp_path / "chromium.log").open("w"), start_new_session=True)
        with contextlib.nullcontext(playwright_session) as p:  # the test process's one Playwright
            # The starting page (file:) waits for the kit, then goes there. DevTools is attached only after
            # that first navigation: Playwright does not follow a page from file: to http: across processes.
            wait_for(lambda: terminals(kit), 30, 0.3, what="the kiosk's browser at the kit's /kiosk")
            browser, page = wait_for(lambda: _kit_page(p, cdp), 30, 0.5, what="the kit's page over DevTools")
            page.set_default_timeout(20_000)

            # 1. The lead's first PIN is unchanged: the screen shows the setup slip.
            page.wait_for_url("**/kiosk/slip")
            assert page.inner_text("#slip-pin") == kit.pins["lead"]
            assert page.evaluate("getComputedStyle(document.documentElement).userSelect") == "none"
            slip = grab_x(display, artefacts / "1-slip-800x480.png")

            # 2. The lead sets their own PIN (on a phone): the screen moves on to the PIN pad by itself.
            kit.fieldkit("pin", "set", "lead", "--pin", "24681357")
            page.wait_for_url("**/login?next=/kiosk")
            page.wait_for_selector("#pin")

            # 3. A door PIN on the touch screen: the door page, and the terminal is signed in as door.
            page.fill("#pin", kit.pins["door"])
            page.click("button[type=submit]")
            page.wait_for_url("**/door")
            page.wait_for_load_state("networkidle")
            assert terminals(kit)[0][1] == "door"
            page.wait_for_function("() => navigator.serviceWorker.controller !== null")  # ready for step 4
            door = grab_x(display, artefacts / "3-door-800x480.png")

            # 4. The web server goes away: the local "starting…" page, not "This site can't be reached".
            kit.stop()
            page.wait_for_function("() => document.title === 'Field Kit · starting'", timeout=20_000)
            assert page.url.endswith("/door")
            assert "Field Kit is starting" in page.inner_text("#kiosk-starting")
            starting = grab_x(display, artefacts / "4-starting-800x480.png")

            # 5. It comes back: the door page again, still signed in (no PIN asked).
            web_again = start_web(kit)
            page.wait_for_function("() => document.title !== 'Field Kit · starting' && location.pathname === '/door'",
                                   timeout=40_000)
            page.wait_for_load_state("networkidle")
            assert "/login" not in page.url
            back = grab_x(display, artefacts / "5-door-again-800x480.png")
            browser.close()
        for shot in (slip, door, starting, back):
            assert colours(shot) > 20, f"{shot} is blank"
        assert slip.read_bytes() != door.read_bytes() != starting.read_bytes()
    finally:
        for proc in (browser_proc, web_again, xvfb):
            if proc is not None:
                stop_process_group(proc)


def _kit_page(p, port: int):
    """(browser, page) once DevTools shows the kit's page; attached while the page was still crossing from
    file: to http:, Playwright keeps the old address, so a new attachment is tried then."""
    try:
        browser = p.chromium.connect_over_cdp(f"http://127.0.0.1:{port}")
    except Exception:  # not listening yet
        return None
    page = next((pg for c in browser.contexts for pg in c.pages if pg.url.startswith("http")), None)
    return (browser, page) if page else None


def test_the_starting_page_shows_why_and_goes_to_the_kit_when_it_answers(page, tmp_path):
    """The local page alone (file:, as chromium opens it at boot): waiting, the boot notice, then the kit."""
    import http.server
    import threading

    port = free_port()
    target = f"http://127.0.0.1:{port}/kiosk"
    page.goto(kiosk.starting_url(target, "Field Kit cannot start: fieldkit.toml on the SD card has a problem."))
    assert page.inner_text("#title") == "Field Kit cannot start"
    assert "fieldkit.toml on the SD card" in page.inner_text("#note")
    page.wait_for_function("() => /\\(\\d+ s\\)/.test(document.getElementById('waited').textContent)")
    assert page.url.startswith("file:")  # nothing answers yet: it keeps waiting, no browser error

    class Kit(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<title>the kit</title>")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Kit)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page.wait_for_url(target, timeout=10_000)
        assert page.title() == "the kit"
    finally:
        server.shutdown()
        server.server_close()
