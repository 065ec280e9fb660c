"""Live-stream clients: what each open `/events` stream costs the web process, and event delivery latency.

A real `fieldkit run web` on a real Mosquitto; N signed-in (lead) clients hold `/events?topics=%23` open
while the bench publishes events on the bus. RSS and PSS (``/proc/<pid>/smaps_rollup``) of the web process
are read with 1, 5 and 20 clients after a burst of traffic. The strongest plain alternative, in the same run:
a minimal Flask+waitress SSE endpoint (one queue per client fed by one paho subscription, the same thread
count), measured the same way, twice: as written naively (unbounded queues, waitress's default buffers) and
tuned the way the kit is (a bounded queue dropping the oldest, waitress's 256 KB output limit), the strongest
plain alternative. Latency: publish time to arrival at each client, p50/p99.

Two kinds of clients: ``reading`` (open pages: small events, read as they come) and ``stalled`` (a frozen
tablet: the TCP connection stays open, nothing is read, while 8,000 events of 2 KB go by). Both servers get
the environment the kit's supervisor and systemd unit give the web process (MALLOC_ARENA_MAX=2); ``--env``
overrides it, e.g. ``--env MALLOC_ARENA_MAX=16`` for glibc's default on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import percentile, print_table, write_json  # noqa: E402
from kit.testing import Mosquitto, free_port, port_open, stop_process_group, wait_for  # noqa: E402
from kit.web.service import OUTBUF_HIGH_WATERMARK  # noqa: E402
from kit.web.sse import QUEUE_SIZE  # noqa: E402

COUNTS = (1, 5, 20)
THREADS = 32  # web.threads' default: the plain endpoint gets the same
TOPIC = "pos/event/sale"
BURST = 200  # events published at each step, so every stream's thread has done real work
STALLED_BURST, STALLED_PAD = 8000, 2000  # ~16 MB per stalled client, waitress's default buffer limit
SHIPPED_ENV = {"MALLOC_ARENA_MAX": "2"}  # as kit/supervisor.py and systemd/fieldkit-web.service set it

PLAIN = textwrap.dedent('''
    import json, queue, sys, threading
    import paho.mqtt.client as mqtt
    from flask import Flask, Response
    from waitress import serve
    port, broker, prefix, threads = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    qsize, outbuf = int(sys.argv[5]), int(sys.argv[6])  # 0, 0: unbounded queues, waitress's default buffers
    app, clients, lock = Flask(__name__), set(), threading.Lock()
    def on_message(_c, _u, msg):
        item = "data: " + json.dumps({"topic": msg.topic[len(prefix):], "payload": json.loads(msg.payload)}) + "\\n\\n"
        with lock:
            for q in list(clients):
                try:
                    q.put_nowait(item)
                except queue.Full:
                    try:
                        q.get_nowait()
                        q.put_nowait(item)
                    except (queue.Empty, queue.Full):
                        pass
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.on_message = on_message
    c.on_connect = lambda cl, *a: cl.subscribe(prefix + "#")
    c.connect("127.0.0.1", broker)
    c.loop_start()
    @app.route("/events")
    def events():
        def gen():
            q = queue.Queue(qsize)
            with lock:
                clients.add(q)
            try:
                yield ": connected\\n\\n"
                while True:
                    yield q.get()
            finally:
                with lock:
                    clients.discard(q)
        return Response(gen(), mimetype="text/event-stream")
    serve(app, host="127.0.0.1", port=port, threads=threads, channel_timeout=3600,
          **({"outbuf_high_watermark": outbuf} if outbuf else {}))
''')


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, PSS) in MB from smaps_rollup."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            fields[parts[0].rstrip(":")] = int(parts[1])
    return fields.get("Rss", 0) / 1024, fields.get("Pss", 0) / 1024


class Refused(RuntimeError):
    """The server answered the stream with something other than 200."""


class Streams:
    """Raw-socket SSE clients read by one selector thread; arrival times of each published event."""

    def __init__(self, port: int, cookie: str, reading: bool = True, topics: str = "%23"):
        self.port, self.cookie, self.reading, self.topics = port, cookie, reading, topics
        self.sel = selectors.DefaultSelector()
        self.buffers: dict[socket.socket, bytes] = {}
        self.latencies: list[float] = []
        self.received = 0  # bytes, all streams together
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def open(self) -> None:
        s = socket.create_connection(("127.0.0.1", self.port))
        s.sendall(f"GET /events?topics={self.topics} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {self.cookie}\r\n"
                  "Accept: text/event-stream\r\n\r\n".encode())
        s.settimeout(10)
        head = b""
        while b": connected" not in head:
            if b"\r\n\r\n" in head and b" 200 " not in head.split(b"\r\n", 1)[0]:
                s.close()  # a refusal (503 while too many streams are open) keeps the connection: do not wait on it
                raise Refused(head.split(b"\r\n", 1)[0].decode(errors="replace"))
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError(f"stream closed: {head[:200]!r}")
            head += chunk
        s.setblocking(False)
        with self.lock:
            self.buffers[s] = b""
            self.sel.register(s, selectors.EVENT_READ)

    def count(self) -> int:
        return len(self.buffers)

    def _read(self) -> None:
        while not self.stop.is_set():
            if not self.reading:
                time.sleep(0.1)
                continue
            with self.lock:
                if not self.buffers:
                    ready = []
                else:
                    ready = self.sel.select(timeout=0.1)
            if not ready:
                time.sleep(0.01)
                continue
            now = time.time()
            for key, _ in ready:
                s = key.fileobj
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    continue
                self.received += len(data)
                buf = self.buffers[s] + data
                *done, rest = buf.split(b"\n\n")
                self.buffers[s] = rest
                for ev in done:
                    for m in re.finditer(rb'"sent":\s*([0-9.]+)', ev):
                        self.latencies.append(now - float(m.group(1)))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        for s in list(self.buffers):
            s.close()


def publish_burst(pub: mqtt.Client, prefix: str, reading: bool) -> int:
    n, pad = (BURST, "") if reading else (STALLED_BURST, "x" * STALLED_PAD)
    for i in range(n):
        pub.publish(prefix + TOPIC, json.dumps({"sale_id": i, "total_cents": 500, "pad": pad, "sent": time.time()}))
        if reading or i % 100 == 0:
            time.sleep(0.005)
    return n


def measure(pid: int, port: int, cookie: str, pub: mqtt.Client, prefix: str, reading: bool) -> dict:
    streams = Streams(port, cookie, reading)
    rows = {}
    try:
        for n in COUNTS:
            while streams.count() < n:
                streams.open()
            streams.latencies.clear()
            sent = publish_burst(pub, prefix, reading)
            time.sleep(2.0 if reading else 4.0)  # let every stream drain (or fill), the allocator settle
            rss, pss = memory_mb(pid)
            lat = list(streams.latencies)
            rows[n] = {"rss_mb": round(rss, 1), "pss_mb": round(pss, 1), "delivered": len(lat),
                       "expected": sent * n if reading else 0, "p50_ms": round(percentile(lat, 50) * 1000, 2),
                       "p99_ms": round(percentile(lat, 99) * 1000, 2)}
    finally:
        streams.close()
    return rows


def start_web(tmp: Path, broker: Mosquitto, extra_env: dict) -> tuple[subprocess.Popen, int, str, str]:
    home, port = tmp / "kit", free_port()
    env = {**os.environ, "FIELDKIT_HOME": str(home), "FIELDKIT_MQTT_PORT": str(broker.port),
           "FIELDKIT_WEB_PORT": str(port), "FIELDKIT_WEB_HOST": "127.0.0.1", "FIELDKIT_KIT_SIMULATE": "1",
           **extra_env}
    init = subprocess.run([sys.executable, "-m", "kit", "init", "--kit-id", "streams", "--site", "bench"],
                          env=env, capture_output=True, text=True, check=True)
    pin = next(line.split()[1] for line in init.stdout.splitlines() if line.split()[:1] == ["lead"])
    proc = subprocess.Popen([sys.executable, "-m", "kit", "run", "web"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for(lambda: port_open("127.0.0.1", port), 30, what="fieldkit web")
    s = requests.Session()
    html = s.get(f"http://127.0.0.1:{port}/login", timeout=5).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    r = s.post(f"http://127.0.0.1:{port}/login", data={"pin": pin, "csrf_token": token}, allow_redirects=False,
               timeout=5)
    assert r.status_code == 302, r.text
    cookie = "; ".join(f"{k}={v}" for k, v in s.cookies.items())
    return proc, port, cookie, "fieldkit/streams/"


def stop(proc: subprocess.Popen) -> None:
    stop_process_group(proc, grace=20)


def run_kit(tmp: Path, broker: Mosquitto, pub: mqtt.Client, extra_env: dict, reading: bool) -> dict:
    proc, port, cookie, prefix = start_web(tmp, broker, extra_env)
    try:
        time.sleep(2)
        return measure(proc.pid, port, cookie, pub, prefix, reading)
    finally:
        stop(proc)


def run_plain(tmp: Path, broker: Mosquitto, pub: mqtt.Client, extra_env: dict, reading: bool,
              tuned: bool) -> dict:
    script, port = tmp / "plain_sse.py", free_port()
    script.write_text(PLAIN)
    bounds = (str(QUEUE_SIZE), str(OUTBUF_HIGH_WATERMARK)) if tuned else ("0", "0")
    proc = subprocess.Popen([sys.executable, str(script), str(port), str(broker.port), "fieldkit/plain/",
                             str(THREADS), *bounds], env={**os.environ, **extra_env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: port_open("127.0.0.1", port), 30, what="plain SSE server")
        time.sleep(2)
        return measure(proc.pid, port, "", pub, "fieldkit/plain/", reading)
    finally:
        stop(proc)


SERVERS = ("kit", "plain", "plain tuned")


def per_client(rows: dict, key: str = "rss_mb") -> float:
    return round((rows[COUNTS[-1]][key] - rows[COUNTS[0]][key]) / (COUNTS[-1] - COUNTS[0]), 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="environment for both servers over the shipped one (e.g. MALLOC_ARENA_MAX=16)")
    args = ap.parse_args()
    extra_env = {**SHIPPED_ENV, **dict(e.split("=", 1) for e in args.env)}
    results: dict = {"env": extra_env, "burst_events": BURST, "stalled_burst_events": STALLED_BURST,
                     "threads": THREADS}
    with tempfile.TemporaryDirectory() as t, Mosquitto(workdir=Path(t)) as broker:
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        for mode in ("reading", "stalled"):
            reading = mode == "reading"
            tmp = Path(t) / mode
            (tmp / "k").mkdir(parents=True)
            results[mode] = {"kit": run_kit(tmp / "k", broker, pub, extra_env, reading),
                             "plain": run_plain(tmp, broker, pub, extra_env, reading, tuned=False),
                             "plain tuned": run_plain(tmp, broker, pub, extra_env, reading, tuned=True)}
        pub.loop_stop()
    rows, headline = [], {}
    for mode in ("reading", "stalled"):
        for name in SERVERS:
            for n, r in results[mode][name].items():
                rows.append({"clients": f"{n} {mode}", "server": name, "RSS (MB)": r["rss_mb"],
                             "PSS (MB)": r["pss_mb"],
                             "delivered": f"{r['delivered']}/{r['expected']}" if r["expected"] else "-",
                             "p50 (ms)": r["p50_ms"], "p99 (ms)": r["p99_ms"]})
        kit = results[mode]["kit"]
        headline[mode] = {
            **{f"{name}_{key}_per_extra_client": per_client(results[mode][name], f"{key}_mb")
               for name in SERVERS for key in ("rss", "pss")},
            "kit_20_over_1_rss_mb": round(kit[COUNTS[-1]]["rss_mb"] - kit[COUNTS[0]]["rss_mb"], 1),
            "kit_20_over_1_pss_mb": round(kit[COUNTS[-1]]["pss_mb"] - kit[COUNTS[0]]["pss_mb"], 1)}
        if mode == "reading":  # delivery latency with 20 clients, against the tuned plain endpoint
            best = results[mode]["plain tuned"][COUNTS[-1]]
            for p in ("p50_ms", "p99_ms"):
                headline[mode][f"{p[:3]}_ratio_to_plain_tuned"] = round(kit[COUNTS[-1]][p] / best[p], 2) if best[p] else None
    print_table(f"live-stream clients: web process memory and event delivery (env {extra_env})", rows)
    print_table("MB per extra client (1 -> 20 clients), RSS / PSS; target <= 1 for the kit",
                [{"clients": m, **{name: f"{h[f'{name}_rss_per_extra_client']} / {h[f'{name}_pss_per_extra_client']}"
                                   for name in SERVERS},
                  "kit 20 over 1 (MB RSS / PSS)": f"{h['kit_20_over_1_rss_mb']} / {h['kit_20_over_1_pss_mb']}"}
                 for m, h in headline.items()])
    results["headline"] = headline
    write_json("streams", results)


if __name__ == "__main__":
    main()
