"""The record `fieldkit up` leaves for the CLI and the updater names its own process, never a reused pid."""

from __future__ import annotations

import json
import subprocess
import sys

from kit.up_record import BROKER_FILE, process_identity, running_record


def _write(config, **fields):
    (config.data_dir / BROKER_FILE).write_text(json.dumps({"host": "127.0.0.1", "port": 1883, "services": [], **fields}))


def test_a_record_whose_pid_now_belongs_to_another_process_is_not_a_running_kit(config):
    config.data_dir.mkdir(parents=True, exist_ok=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    looks_like_up = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "up"])
    try:
        # a killed `fieldkit up` recorded this pid; the kernel has since given it to `other`
        _write(config, pid=other.pid, started="an-earlier-boot:12345")
        assert running_record(config) is None
        _write(config, pid=other.pid, started=None)
        assert running_record(config) is None
        _write(config, pid=other.pid, started=process_identity(other.pid))  # the process that wrote it
        assert running_record(config)["pid"] == other.pid
        # a record from a release that wrote no identity: trusted only for a process running `... up`
        _write(config, pid=other.pid)
        assert running_record(config) is None
        _write(config, pid=looks_like_up.pid)
        assert running_record(config)["pid"] == looks_like_up.pid
    finally:
        for p in (other, looks_like_up):
            p.kill()
            p.wait()
    _write(config, pid=other.pid, started=process_identity(other.pid))
    assert running_record(config) is None  # gone


def test_the_identity_tells_two_processes_and_two_boots_apart():
    me = process_identity(__import__("os").getpid())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        theirs = process_identity(child.pid)
    finally:
        child.kill()
        child.wait()
    assert me and theirs and me != theirs and me.split(":")[0] == theirs.split(":")[0]  # same boot
    assert process_identity(child.pid) is None
