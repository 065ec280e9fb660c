"""VE.Direct parsing: throughput of the kit's byte-level parser beside a naive line-splitting parser,
and the CPU a reader uses at the real rate of one block per second.

The kit's parser takes a whole plain block at once with bytes methods and falls back to its byte-by-byte
state machine for anything unusual (both columns are shown). The naive parser is what many public scripts do: decode as text, split on CRLF and TAB, emit at the
``Checksum`` line. It is faster, and wrong: it passes corrupted blocks and breaks on HEX messages.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
from bench.common import print_table, write_json  # noqa: E402
from drivers.vedirect import VEDirectParser  # noqa: E402
from drivers.vedirect_sim import ASYNC_HEX, SimulatedPowerKit, World, build_block  # noqa: E402


def naive_parse(data: bytes) -> list[dict[str, str]]:
    blocks, current = [], {}
    for line in data.decode("ascii", errors="ignore").split("\r\n"):
        label, _, value = line.partition("\t")
        if label == "Checksum":
            blocks.append(current)
            current = {}
        elif label:
            current[label] = value
    return blocks


def make_stream(blocks: int, seed: int = 1, corrupt_every: int = 0, hex_every: int = 0) -> bytes:
    world = World(seed=seed)
    rng = random.Random(seed)
    out = bytearray()
    for i in range(blocks):
        world.step(1.0)
        raw = build_block(world.charger_fields(), hex_after=3 if hex_every and i % hex_every == 0 else None,
                          hex_line=ASYNC_HEX)
        if corrupt_every and i % corrupt_every == 0:
            pos = rng.randrange(2, len(raw) - 1)
            raw = raw[:pos] + bytes([raw[pos] ^ 0x04]) + raw[pos + 1:]
        out += raw
    return bytes(out)


def throughput(fn, data: bytes, repeat: int = 3) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(repeat):
        started = time.perf_counter()
        count = fn(data)
        best = min(best, time.perf_counter() - started)
    return best, count


def kit_parse(data: bytes, fast: bool = True) -> int:
    parser = VEDirectParser(fast=fast)
    return sum(len(parser.feed(data[i:i + 4096])) for i in range(0, len(data), 4096))


CHILD = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
port, seconds, mode = sys.argv[2], float(sys.argv[3]), sys.argv[4]
import serial
from drivers.vedirect import VEDirectReader, decode
from bench.power import naive_parse
records = 0
if mode == "kit":
    reader = VEDirectReader(port, timeout=1.0)
    reader.read_once()
    t0, c0 = time.monotonic(), time.process_time()
    while time.monotonic() - t0 < seconds:
        for r in reader.read_once() or []:
            decode(r); records += 1
else:
    s = serial.Serial(port, 19200, timeout=1.0)
    t0, c0 = time.monotonic(), time.process_time()
    buf = b""
    while time.monotonic() - t0 < seconds:
        line = s.readline()
        buf += line
        if b"Checksum" in line:
            records += len(naive_parse(buf)); buf = b""
print(time.process_time() - c0, time.monotonic() - t0, records)
"""


def cpu_at_one_block_per_second(seconds: float) -> list[dict]:
    rows = []
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"fk-bench-power-{os.getpid()}"
    for mode in ("kit", "naive"):
        sim = SimulatedPowerKit(tmp / mode, World(seed=3), interval=1.0, monitor=False).start()
        try:
            out = subprocess.run([sys.executable, "-c", CHILD, str(HERE.parent), sim.ports[0], str(seconds), mode],
                                 capture_output=True, text=True, timeout=seconds + 30)
        finally:
            sim.stop()
        cpu, wall, records = (float(x) for x in out.stdout.split())
        rows.append({"reader": "fieldkit VEDirectReader" if mode == "kit" else "naive readline",
                     "window_s": round(wall, 1), "records": int(records), "cpu_s": round(cpu, 4),
                     "cpu_percent": round(100 * cpu / wall, 3)})
    return rows


def main() -> None:
    n = 20000
    clean = make_stream(n)
    dirty = make_stream(n, corrupt_every=10, hex_every=7)
    rows = []
    for name, data in (("clean", clean), ("10% corrupt + HEX", dirty)):
        t_kit, c_kit = throughput(kit_parse, data)
        t_naive, c_naive = throughput(lambda d: len(naive_parse(d)), data)
        t_bytes, c_bytes = throughput(lambda d: kit_parse(d, fast=False), data, repeat=1)
        rows.append({"stream": name, "blocks": n, "MB": round(len(data) / 1e6, 2),
                     "kit_blocks_per_s": round(c_kit / t_kit), "kit_bytewise_blocks_per_s": round(c_bytes / t_bytes),
                     "naive_blocks_per_s": round(c_naive / t_naive),
                     "naive_over_kit": round((c_naive / t_naive) / (c_kit / t_kit), 2),
                     "kit_accepted": c_kit, "naive_emitted": c_naive})
    print_table("VE.Direct parser throughput (best of 3, 4 KiB chunks)", rows)
    cpu_rows = cpu_at_one_block_per_second(float(os.environ.get("BENCH_POWER_SECONDS", "20")))
    print_table("CPU at one block per second (reader process only, simulated charger on a pty)", cpu_rows)
    headline = {"kit_blocks_per_s": rows[0]["kit_blocks_per_s"], "naive_over_kit": rows[0]["naive_over_kit"],
                "cpu_percent_at_1_block_s": cpu_rows[0]["cpu_percent"]}
    write_json("power", {"throughput": rows, "cpu": cpu_rows, "headline": headline})


if __name__ == "__main__":
    main()
