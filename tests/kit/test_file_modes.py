"""Modes of what the CLI and `fieldkit up` write: nothing in the data dir is readable by other users."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from kit.testing import free_port, wait_for


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _env(home: Path, **extra: str) -> dict:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FIELDKIT_")}
    return {**base, "FIELDKIT_HOME": str(home), **extra}


def _fieldkit(env: dict, *args: str) -> subprocess.CompletedProcess:
    # A permissive umask, as a login shell has: the kit must not rely on the caller's.
    return subprocess.run([sys.executable, "-m", "kit", *args], env=env, capture_output=True, text=True, timeout=120,
                          preexec_fn=lambda: os.umask(0o022))


def _open_to_others(data: Path) -> list[str]:
    """Everything under the data dir that a user other than the kit's could read or write."""
    bad = []
    for root, dirs, files in os.walk(data):
        for name in dirs + files:
            p = Path(root) / name
            if not p.is_symlink() and _mode(p) & 0o007:
                bad.append(f"{p.relative_to(data)} {oct(_mode(p))}")
    return bad


def test_init_and_up_leave_private_files(tmp_path):
    home = tmp_path / "home"
    env = _env(home, FIELDKIT_WEB_PORT=str(free_port()), FIELDKIT_WEB_HOST="127.0.0.1")
    init = _fieldkit(env, "init", "--kit-id", "modes", "--site", "modes", "--demo")
    assert init.returncode == 0, init.stderr
    data = home / "var"
    assert _mode(data) == 0o751  # others may only pass through (Mosquitto's own user, to its persistence)
    assert _mode(data / "secrets") == 0o700
    secrets = list((data / "secrets").rglob("*"))
    assert {_mode(f) for f in secrets if f.is_file()} == {0o600}
    assert {_mode(f) for f in secrets if f.is_dir()} <= {0o700}
    assert _mode(data / "kit.db") == 0o640
    assert _open_to_others(data) == []

    up = subprocess.Popen([sys.executable, "-m", "kit", "up", "--simulate", "--only", "web", "--only", "status",
                           "--only", "pos"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True, preexec_fn=lambda: os.umask(0o022))
    try:
        wait_for(lambda: (data / "broker.json").exists(), 30, what="fieldkit up's broker")
        wait_for(lambda: any((data / "mosquitto").glob("mosquitto.log")), 10, what="the broker's log")
        time.sleep(3)  # the services open the database, write the clock state, the printer's capability cache
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(30)
    assert up.returncode == 0
    assert _mode(data) == 0o751 and _mode(data / "secrets") == 0o700
    assert _mode(data / "kit.db") == 0o640
    assert _mode(data / "mosquitto") & 0o007 == 0
    assert _open_to_others(data) == []


def test_hq_database_made_by_the_cli_is_private(tmp_path):
    home = tmp_path / "hq"
    env = _env(home)
    listed = _fieldkit(env, "hq", "kits", "list")
    assert listed.returncode == 0, listed.stderr
    db = home / "var" / "hq.db"
    assert db.exists()
    assert _mode(db) & 0o077 in (0o040, 0o000), oct(_mode(db))
    assert _open_to_others(home / "var") == []
