"""The naive alternative bench/pos.py compares the kit's sale endpoint with: Flask + waitress, no framework.

It does the same insert work per sale as the kit (the prices read from a product table, a receipt
number taken from a counter, the sale row, its item rows, a ledger-like event with a SHA-256 chain
link, a print job holding the receipt text) in one ``BEGIN IMMEDIATE`` transaction with WAL and
``synchronous=FULL`` on one connection per waitress thread. It has no sign-in, no CSRF check, no
idempotency, no shifts, no tax or discounts and no receipt preview: what someone writing "just an
endpoint" would write. Run as ``python bench/_pos_naive.py <db> <port> <threads>``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
import threading
import time
import uuid

SCHEMA = """
CREATE TABLE IF NOT EXISTS products (sku TEXT PRIMARY KEY, name TEXT NOT NULL, price_cents INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sales (id TEXT PRIMARY KEY, receipt TEXT NOT NULL UNIQUE, at REAL NOT NULL,
    total_cents INTEGER NOT NULL, paid_cents INTEGER NOT NULL, method TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sale_items (sale_id TEXT NOT NULL, sku TEXT NOT NULL, qty INTEGER NOT NULL,
    unit_cents INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, type TEXT NOT NULL, payload TEXT NOT NULL,
    hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS print_jobs (id INTEGER PRIMARY KEY, receipt TEXT NOT NULL, body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued');
"""


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def sell(conn: sqlite3.Connection, body: dict, own_transaction: bool = True) -> dict:
    if own_transaction:
        conn.execute("BEGIN IMMEDIATE")
    try:
        items = []
        for it in body["items"]:
            name, price = conn.execute("SELECT name, price_cents FROM products WHERE sku = ?", (it["sku"],)).fetchone()
            items.append((it["sku"], name, int(it.get("qty", 1)), price))
        total = sum(q * p for _, _, q, p in items)
        paid = sum(int(round(float(p["amount"]) * 100)) for p in body.get("payments", []))
        n = conn.execute("UPDATE counter SET n = n + 1 WHERE id = 1 RETURNING n").fetchone()[0]
        sale_id, receipt = str(uuid.uuid4()), f"naive-{n}"
        conn.execute("INSERT INTO sales VALUES (?,?,?,?,?,?)",
                     (sale_id, receipt, time.time(), total, paid, body["payments"][0]["method"]))
        conn.executemany("INSERT INTO sale_items VALUES (?,?,?,?)", [(sale_id, s, q, p) for s, _, q, p in items])
        payload = json.dumps({"id": sale_id, "receipt": receipt, "items": items, "total_cents": total})
        prev = conn.execute("SELECT hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        digest = hashlib.sha256(((prev[0] if prev else "") + payload).encode()).hexdigest()
        conn.execute("INSERT INTO events (type, payload, hash) VALUES ('sale', ?, ?)", (payload, digest))
        text = "\n".join(f"{q} x {name}  {q * p / 100:.2f}" for _, name, q, p in items) + f"\nTOTAL {total / 100:.2f}"
        conn.execute("INSERT INTO print_jobs (receipt, body) VALUES (?, ?)", (receipt, text))
        if own_transaction:
            conn.execute("COMMIT")
    except BaseException:
        if own_transaction:
            conn.execute("ROLLBACK")
        raise
    return {"receipt": receipt, "total_cents": total, "change_cents": paid - total, "id": sale_id}


def prefill(path: str, products: list[tuple[str, str, int]], carts: list[dict], count: int) -> None:
    conn = connect(path)
    conn.executescript(SCHEMA)
    conn.executemany("INSERT OR REPLACE INTO products VALUES (?,?,?)", products)
    conn.execute("INSERT OR IGNORE INTO counter VALUES (1, 0)")
    for first in range(0, count, 5000):
        conn.execute("BEGIN IMMEDIATE")
        for i in range(first, min(count, first + 5000)):
            sell(conn, carts[i % len(carts)], own_transaction=False)
        conn.execute("COMMIT")
    conn.execute("UPDATE print_jobs SET status = 'done'")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def serve(path: str, port: int, threads: int) -> None:
    from flask import Flask, jsonify, request
    from waitress import serve as waitress_serve

    app = Flask("naive")
    local = threading.local()

    @app.post("/sale")
    def sale():
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = connect(path)
        return jsonify(sell(conn, request.get_json())), 201

    waitress_serve(app, host="127.0.0.1", port=port, threads=threads, _quiet=True)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
