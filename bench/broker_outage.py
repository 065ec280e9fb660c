"""How long after the broker returns are `fieldkit up`'s services back on the bus?

Two outages against real processes (`fieldkit up --simulate`, real Mosquitto):
  * the kit's own broker stops for 8 s and starts again on its port (measured from its return);
  * `fieldkit up`'s private broker is killed with SIGKILL and the supervisor restarts it (from the kill).
"Back" means every service has published health ``ok`` again on the new broker (a restarted broker has
no retained copy, so each message seen is a live one).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from bench.common import print_table, write_json  # noqa: E402
from kit.testing import Mosquitto, free_port, port_open, stop_process_group, wait_for  # noqa: E402

SERVICES = ["web", "status", "checkin", "pos", "power", "cues", "sync"]
OUTAGE_SECONDS = 8.0


def start_up(home: Path, kit_id: str, extra: dict, args: list[str]) -> subprocess.Popen:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FIELDKIT_")}
    env = {**base, "FIELDKIT_HOME": str(home), "FIELDKIT_WEB_PORT": str(free_port()), "FIELDKIT_WEB_HOST": "127.0.0.1",
           **extra}
    subprocess.run([sys.executable, "-m", "kit", "init", "--kit-id", kit_id, "--site", "bench", "--demo"], env=env,
                   check=True, capture_output=True)
    return subprocess.Popen([sys.executable, "-m", "kit", "up", "--simulate", *args], env=env,
                            stdout=(home / "up.log").open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def all_ok_after(port: int, kit_id: str, since: float, timeout: float = 60) -> float:
    """Seconds from ``since`` until every service's health ``ok`` has been seen on the broker at ``port``."""
    seen: dict[str, float] = {}

    def on_message(_c, _u, msg):
        if json.loads(msg.payload or b"{}").get("state") == "ok":
            seen.setdefault(msg.topic.split("/")[2], time.monotonic())

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{os.getpid()}-{time.monotonic_ns()}")
    c.on_message = on_message
    c.on_connect = lambda cl, *_: cl.subscribe(f"fieldkit/{kit_id}/+/health", qos=1)
    wait_for(lambda: port_open("127.0.0.1", port), timeout, 0.01, what="broker")
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        wait_for(lambda: set(SERVICES) <= set(seen), timeout, 0.02, what="every service back")
    finally:
        c.loop_stop()
        c.disconnect()
    return max(seen.values()) - since


def stop(proc: subprocess.Popen) -> None:
    stop_process_group(proc, grace=30)


def outage_of_the_kits_broker(tmp: Path) -> float:
    (tmp / "broker").mkdir()
    broker = Mosquitto(workdir=tmp / "broker").start()
    kit = start_up(tmp / "a", "bencha", {"FIELDKIT_MQTT_PORT": str(broker.port)}, ["--existing-broker"])
    try:
        all_ok_after(broker.port, "bencha", time.monotonic())
        time.sleep(3)
        broker.stop()
        time.sleep(OUTAGE_SECONDS)
        broker.start()
        return all_ok_after(broker.port, "bencha", time.monotonic())
    finally:
        stop(kit)
        broker.stop()


def kill_of_the_private_broker(tmp: Path) -> tuple[float, float]:
    home = tmp / "b"
    kit = start_up(home, "benchb", {}, [])
    try:
        wait_for(lambda: (home / "var" / "broker.json").exists(), 30, what="broker.json")
        port = json.loads((home / "var" / "broker.json").read_text())["port"]
        all_ok_after(port, "benchb", time.monotonic())
        time.sleep(3)
        line = [x for x in (home / "up.log").read_text().splitlines() if "event=broker_started" in x][-1]
        killed = time.monotonic()
        os.kill(int(line.split("pid=")[1].split()[0]), signal.SIGKILL)
        time.sleep(0.3)  # let the supervisor see it (it checks every 0.2 s)
        wait_for(lambda: port_open("127.0.0.1", port), 20, 0.01, what="the broker restarted")
        returned = time.monotonic()
        total = all_ok_after(port, "benchb", killed)
        return total, total - (returned - killed)
    finally:
        stop(kit)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="fk-bench-outage-") as d:
        tmp = Path(d)
        after_return = outage_of_the_kits_broker(tmp)
        kill_total, kill_after_return = kill_of_the_private_broker(tmp)
    rows = [
        {"case": f"broker stopped {OUTAGE_SECONDS:.0f} s, then back", "services_back_after_return_s": round(after_return, 2),
         "from_outage_start_s": round(after_return + OUTAGE_SECONDS, 2)},
        {"case": "private broker SIGKILLed, restarted by fieldkit up", "services_back_after_return_s": round(kill_after_return, 2),
         "from_outage_start_s": round(kill_total, 2)},
    ]
    print_table("Services back on the bus after a broker outage", rows)
    write_json("broker_outage", {"rows": rows, "headline": {"back_after_8s_outage_s": round(after_return, 2),
                                                            "back_after_kill_s": round(kill_total, 2)}})
    return 0 if after_return < 5 and kill_total < 5 else 1


if __name__ == "__main__":
    sys.exit(main())
