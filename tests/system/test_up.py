"""`fieldkit up --simulate` as real processes: every service healthy; a SIGKILLed child comes back."""

import os
import signal

from kit.testing import wait_for


def child_pids(kit) -> dict[str, int]:
    """Service name -> pid, from the health messages (each carries its pid)."""
    import json
    import urllib.request

    pids = {}
    for line in kit.log_path.read_text().splitlines():
        if "event=child_started" in line:
            parts = dict(p.split("=", 1) for p in line.split() if "=" in p)
            pids[parts["name"]] = int(parts["pid"])
    assert json.loads(urllib.request.urlopen(kit.url + "api/v1/health", timeout=2).read())["ok"]
    return pids


def test_the_whole_kit_comes_up_and_a_killed_service_is_restarted(kit_factory):
    kit = kit_factory()  # every service, simulated hardware, demo data
    assert set(kit.health()["services"]) >= {"web", "status", "checkin", "pos", "power", "cues", "sync"}
    pos_pid = child_pids(kit)["pos"]
    os.kill(pos_pid, signal.SIGKILL)
    wait_for(lambda: kit.health()["services"]["pos"] == "offline", 15, what="last will seen by the web process")
    wait_for(lambda: kit.health()["status"] == "degraded", 15, what="the kit's status says degraded")
    wait_for(lambda: child_pids(kit)["pos"] != pos_pid, 15, what="restart")
    kit.wait_healthy(["pos"], timeout=30)
    wait_for(lambda: kit.health()["status"] == "online", 15, what="online again")
    assert "event=child_exited name=pos code=-9" in kit.log_path.read_text()


def test_ctrl_c_stops_every_process(kit_factory):
    kit = kit_factory(["web", "status"])
    pids = child_pids(kit)
    kit.stop()
    assert kit.proc.returncode == 0
    for pid in pids.values():
        wait_for(lambda pid=pid: not _alive(pid), 10, what=f"pid {pid} gone")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill 0; it is gone for our purpose
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_supervisor_killed_outright_takes_its_services_with_it(kit_factory):
    """The OOM killer or kill -9 on `fieldkit up`: no orphaned pos or web is left to clash with the next one."""
    kit = kit_factory(["web", "status", "pos"])
    pids = child_pids(kit)
    os.kill(kit.proc.pid, signal.SIGKILL)  # the supervisor only: its services run in sessions of their own
    kit.proc.wait()
    for name, pid in pids.items():
        wait_for(lambda pid=pid: not _alive(pid), 15, what=f"{name} (pid {pid}) ended with its supervisor")
