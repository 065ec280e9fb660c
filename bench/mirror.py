"""Mirror lag: a kit sells 2 sales/s; how long until each sale is on the site's hub, and until the kit knows.

Two real Mosquittos bridged as on a site (bridge_conf), the real sender (sync/mirror.py) on the kit's
broker, the real mirror (sync/mirror_hub.py: HQ's validation and ingest, chain check, acknowledgement)
on the hub's, real sales (pos.checkout.make_sale). Lag per sale, from its commit:

- "on the hub": the hub's acknowledgement covering it, seen on the hub's broker (stored, chain checked);
- "kit knows": that acknowledgement back on the kit's broker (what `fieldkit mirror status` shows).

The plain alternative, in the same run at the same rate: each event published raw (QoS 1) as it is
written, and inserted by a subscriber on the hub into a plain SQLite table (WAL, synchronous=FULL):
no batching, no chain check, no acknowledgement, nothing sent again after a partition.
Target (issue 16): mirror lag p99 < 2 s.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
from bench.common import median, percentile, print_table, write_json  # noqa: E402

SITE = "benchsite"
CATALOGUE = (HERE.parent / "pos" / "demo" / "catalogue.csv").read_bytes()


def make_kit(home: Path, kit: str, port: int, hub: bool = False):
    from kit.clock import KitClock
    from kit.config import load_config
    from kit.db import apply_migrations
    from kit.documents import import_document
    from kit.features import all_migration_sets
    from kit.ledger import Ledger
    from kit.service import open_database

    config = load_config({"FIELDKIT_HOME": str(home), "FIELDKIT_KIT_ID": kit, "FIELDKIT_KIT_SITE": SITE,
                          "FIELDKIT_KIT_CLOCK_ASSUME_SYNCED": "1", "FIELDKIT_MQTT_PORT": str(port),
                          "FIELDKIT_SITE_HUB": "1" if hub else "0"})
    db = open_database(config)
    apply_migrations(db, all_migration_sets())
    if not hub:
        import_document(config, db, "pos.catalogue", CATALOGUE, "catalogue.csv")
    return config, db, Ledger(kit, KitClock(config.data_dir, True))


def sell_at(rate: float, seconds: float, sell) -> dict[int, float]:
    """Call sell() ``rate`` times a second; seq -> commit time."""
    committed: dict[int, float] = {}
    start = time.monotonic()
    n = 0
    while (due := start + n / rate) < start + seconds:
        time.sleep(max(0.0, due - time.monotonic()))
        seq = sell()
        committed[seq] = time.time()
        n += 1
    return committed


def lags(committed: dict[int, float], seen: list[tuple[float, int]]) -> list[float]:
    """Per seq: the first time a message covering it (upto >= seq) was seen, minus its commit time."""
    out, covered = [], 0
    for at, upto in sorted(seen):
        for seq in range(covered + 1, upto + 1):
            if seq in committed:
                out.append(at - committed[seq])
        covered = max(covered, upto)
    return out


def run_mirror(base: Path, hub_port: int, kit_port: int, rate: float, seconds: float) -> dict:
    from kit.bus import Bus
    from pos.checkout import make_sale, parse_sale_request
    from sync.mirror import MirrorSender
    from sync.mirror_hub import MirrorHub
    from sync.mirror_proto import ack_topic

    hub_config, hub_db, _ = make_kit(base / "hub", "hub", hub_port, hub=True)
    config, db, ledger = make_kit(base / "kit", "bench1", kit_port)
    hub_bus, kit_bus = Bus.from_config(hub_config, "sync"), Bus.from_config(config, "sync")
    watch_hub, watch_kit = Bus("hub", "watch", port=hub_port, will=False), Bus("bench1", "watch", port=kit_port,
                                                                              will=False)
    on_hub, at_kit = [], []
    for bus in (hub_bus, kit_bus, watch_hub, watch_kit):
        assert bus.start(wait=5)
    watch_hub.subscribe(ack_topic(SITE, "bench1", "hub"), lambda _t, m: on_hub.append((time.time(), m["upto"])), 1)
    watch_kit.subscribe(ack_topic(SITE, "bench1", "hub"), lambda _t, m: at_kit.append((time.time(), m["upto"])), 1)
    hub = MirrorHub(hub_config, hub_bus)
    sender = MirrorSender(config, db, kit_bus)
    hub.start()
    sender.start()
    stop = threading.Event()

    def loop(step, wake) -> None:
        while not stop.is_set():
            step()
            wake.wait(0.1)
            wake.clear()

    threads = [threading.Thread(target=loop, args=(hub.pump, hub.wake), daemon=True),
               threading.Thread(target=loop, args=(sender.pump, sender.wake), daemon=True)]
    for t in threads:
        t.start()
    time.sleep(2)  # the bridge up, the hub announced
    request = parse_sale_request({"items": [{"sku": "STICKER", "qty": 1}],
                                  "payments": [{"method": "cash", "amount": "5.00"}]})

    def sell() -> int:
        make_sale(db, ledger, config, request)
        return db.scalar("SELECT MAX(seq) FROM events")

    committed = sell_at(rate, seconds, sell)
    time.sleep(3)
    stop.set()
    for t in threads:
        t.join(5)
    for bus in (hub_bus, kit_bus, watch_hub, watch_kit):
        bus.stop()
    return {"on hub": lags(committed, on_hub), "kit knows": lags(committed, at_kit), "sales": len(committed),
            "held": len(hub.events("bench1", 0, 100_000)), "last_seq": max(committed, default=0)}


def run_plain(base: Path, hub_port: int, kit_port: int, rate: float, seconds: float) -> dict:
    from kit.bus import Bus
    from kit.ledger import events_after
    from pos.checkout import make_sale, parse_sale_request

    config, db, ledger = make_kit(base / "plain-kit", "bench2", kit_port)
    store = sqlite3.connect(base / "plain-hub.db", check_same_thread=False)
    store.execute("PRAGMA journal_mode=WAL")
    store.execute("PRAGMA synchronous=FULL")
    store.execute("CREATE TABLE events (kit TEXT, seq INTEGER, body TEXT, PRIMARY KEY (kit, seq))")
    seen: list[tuple[float, int]] = []

    def on_event(_topic: str, msg: dict) -> None:
        with store:
            store.execute("INSERT OR IGNORE INTO events VALUES (?, ?, ?)", (msg["kit"], msg["seq"], json.dumps(msg)))
        seen.append((time.time(), msg["seq"]))

    hub_side, kit_side = Bus("hub", "plain", port=hub_port, will=False), Bus("bench2", "plain", port=kit_port,
                                                                            will=False)
    for bus in (hub_side, kit_side):
        assert bus.start(wait=5)
    hub_side.subscribe(f"fieldkit/site/{SITE}/plain/bench2", on_event, 1)
    time.sleep(2)
    request = parse_sale_request({"items": [{"sku": "STICKER", "qty": 1}],
                                  "payments": [{"method": "cash", "amount": "5.00"}]})

    def sell() -> int:
        before = db.scalar("SELECT COALESCE(MAX(seq), 0) FROM events")
        make_sale(db, ledger, config, request)
        for event in events_after(db, before, 100):  # published as it is written
            kit_side.publish(f"fieldkit/site/{SITE}/plain/bench2", event.as_dict(), qos=1)
        return db.scalar("SELECT MAX(seq) FROM events")

    committed = sell_at(rate, seconds, sell)
    time.sleep(3)
    for bus in (hub_side, kit_side):
        bus.stop()
    return {"on hub": lags(committed, seen), "sales": len(committed)}


def main() -> None:
    from kit.sitelink import bridge_conf
    from kit.testing import Mosquitto

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="selling time per variant")
    parser.add_argument("--rate", type=float, default=2.0, help="sales per second")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fk-bench-mirror-") as tmp:
        base = Path(tmp)
        (base / "hub-broker").mkdir()
        (base / "kit-broker").mkdir()
        hub_broker = Mosquitto(workdir=base / "hub-broker").start()
        kit_broker = Mosquitto(workdir=base / "kit-broker",
                               extra_conf=bridge_conf(SITE, "bench1", "127.0.0.1", hub_broker.port)).start()
        try:
            mirror = run_mirror(base, hub_broker.port, kit_broker.port, args.rate, args.seconds)
            plain = run_plain(base, hub_broker.port, kit_broker.port, args.rate, args.seconds)
        finally:
            kit_broker.stop()
            hub_broker.stop()
    rows = []
    for name, values, total in (("mirror: on the hub (stored, chain checked)", mirror["on hub"], mirror["sales"]),
                                ("mirror: the kit knows (ack back)", mirror["kit knows"], mirror["sales"]),
                                ("plain: raw publish per event, insert", plain["on hub"], plain["sales"])):
        rows.append({"path": name, "sales": total, "arrived": len(values), "p50 ms": median(values) * 1000,
                     "p99 ms": percentile(values, 99) * 1000, "max ms": max(values, default=float("nan")) * 1000})
    base_p50, base_p99 = rows[2]["p50 ms"], rows[2]["p99 ms"]
    for r in rows:
        r["p50 / plain"], r["p99 / plain"] = r["p50 ms"] / base_p50, r["p99 ms"] / base_p99
    print_table(f"Mirror lag at {args.rate:g} sales/s for {args.seconds:g} s (two bridged Mosquittos, one machine)",
                rows)
    target_met = rows[1]["p99 ms"] < 2000 and rows[1]["arrived"] == mirror["sales"] and mirror["held"] == mirror["last_seq"]
    print(f"\ntarget p99 < 2 s (the kit knows): {'met' if target_met else 'NOT met'}")
    write_json("mirror", {"rate": args.rate, "seconds": args.seconds, "rows": rows,
                          "headline": {"mirror p99 ms": round(rows[1]["p99 ms"]), "plain p99 ms": round(base_p99),
                                       "target met": target_met}})


if __name__ == "__main__":
    main()
