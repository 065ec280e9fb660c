"""Sample data for ``make demo``: a signing key, an attendee list, and the door page's sample tickets.

The demo panel "shows" these to the simulated camera or scanner: valid, duplicate, refunded, wrong
day, flagged, blocked, forged and garbage, so the whole door journey can be walked in a browser.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from checkin import signed
from checkin.documents import ATTENDEES
from checkin.issue import make_ticket, type_item
from checkin.keys import add_keys, save_private_key
from kit.documents import import_document

FIRST = ["Anna", "Ben", "Chloé", "Dario", "Eva", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kemal", "Lena",
         "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara"]
LAST = ["Smith", "Jones", "Müller", "Rossi", "García", "Nakamura", "Okafor", "Berg", "Novak", "Lee", "Dubois",
        "Kowalski", "Haddad", "Silva", "Jensen"]
TYPES = ("Day pass", "Weekend pass", "VIP")
SAMPLES = ("valid", "duplicate", "refunded", "wrong_day", "flagged", "blocked", "forged", "garbage")
GUESTS = 300


def samples_path(config) -> Path:
    return config.data_dir / "checkin" / "demo-samples.json"


def demo_setup(config, db) -> None:
    key = Ed25519PrivateKey.generate()
    save_private_key(config.secrets_dir, key, "kit-demo")
    with db.transaction() as conn:
        add_keys(conn, [key.public_key()], "kit", "demo key")
        items = {name: type_item(conn, name) for name in TYPES}
    tomorrow = (datetime.now(config.tz) + timedelta(days=2)).strftime("%Y-%m-%d")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["Order code", "Attendee name", "Product", "E-mail", "Secret", "Status",
                     "Requires special attention", "Blocked", "Date", "Phone", "Postcode", "Marketing opt-in"])
    special = {0: ("refunded", "", "", ""), 1: ("", "", "", tomorrow), 2: ("", "yes", "", ""), 3: ("", "", "yes", "")}
    samples: dict[str, object] = {"valid": []}
    for i in range(GUESTS):
        first, last = FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]
        ticket_type = TYPES[0] if i % 5 else TYPES[1 + (i // 5) % 2]
        seed, text = make_ticket(key, items[ticket_type])
        status, attention, blocked, day = special.get(i, ("", "", "", ""))
        writer.writerow([f"D{i:04d}", f"{first} {last}", ticket_type, f"{first.lower()}.{i}@example.org", text,
                         status, attention, blocked, day, f"+44 7700 9{i:05d}", f"N{i % 20 + 1} {i % 9}AB",
                         "yes" if i % 3 else "no"])
        kind = {0: "refunded", 1: "wrong_day", 2: "flagged", 3: "blocked"}.get(i)
        if kind:
            samples[kind] = text
        elif len(samples["valid"]) < 60:  # type: ignore[arg-type]
            samples["valid"].append(text)  # type: ignore[union-attr]
    samples["forged"] = signed.sign(Ed25519PrivateKey.generate(), signed.TicketPayload("FORGED123", items[TYPES[0]]))
    samples["garbage"] = "WIFI:S:free-hotspot;T:nopass;;"
    import_document(config, db, ATTENDEES, out.getvalue().encode(), "demo-attendees.csv", source="demo")
    path = samples_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(samples))


def load_samples(config) -> dict | None:
    try:
        return json.loads(samples_path(config).read_text())
    except (OSError, ValueError):
        return None


def pick_sample(conn: sqlite3.Connection, samples: dict, kind: str) -> str:
    """The payload to show for a panel button: a fresh valid ticket, the last admitted one, or a fixed sample."""
    if kind not in SAMPLES:
        raise ValueError(f"unknown sample {kind!r}")
    if kind in ("valid", "duplicate"):
        used = {r[0] for r in conn.execute("SELECT DISTINCT ticket_key FROM checkin_scans")}
        if kind == "duplicate":
            row = conn.execute("SELECT ticket_key FROM checkin_scans WHERE admitted = 1 AND undone = 0"
                               " ORDER BY seq DESC LIMIT 1").fetchone()
            if row:
                return row[0]
        fresh = [p for p in samples["valid"] if p not in used]
        return fresh[0] if fresh else samples["valid"][0]
    return samples[kind]
