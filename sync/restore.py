"""Replace a dead kit: bring its ledger back onto a spare from the site's mirror or a USB replica.

The spare is freshly initialised with the dead kit's id. Restore refuses a kit whose ledger is not
empty (two chains of one id must never meet), refuses a source whose events are of another kit, and
restores nothing whose chain does not verify from the genesis hash. The events go in exactly as the
dead kit wrote them (same seq, id, hash), so the next event continues its seq and its chain, and
``ledger rebuild`` recreates every feature's tables from them: the receipt numbering goes on without
a gap or a repeat. Secrets are not mirrored: the lead sets PINs again, the HQ token comes from
fieldkit.toml or a new join.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field

from kit.db import DatabaseLock
from kit.event_codec import pack
from kit.ledger import GENESIS, _chain_hash, last_seq, rebuild, verify
from kit.ledger_hold import release_hold
from sync.hq import validate
from sync.hq.store import now_utc
from sync.mirror_proto import ask_topic, check_kit, restore_topic

log = logging.getLogger("fieldkit.sync.restore")


class RestoreError(Exception):
    """Nothing was restored; the text says why and what to do."""


@dataclass
class Checked:
    rows: list[dict] = field(default_factory=list)  # validated, in seq order, chain verified
    problem: str = ""  # why the source stops being usable (its events after rows[-1] are not restored)


def check_records(records: list, kit: str, start: tuple[int, str] = (0, GENESIS)) -> Checked:
    """The leading run of ``records`` that is this kit's ledger from seq 1 with its chain unbroken (or from
    ``start``, a truncated ledger's checkpoint: the seq and hash of the last event it deleted)."""
    out = Checked()
    expected, prev = start[0] + 1, start[1]
    now = now_utc()
    for record in records:
        claimed = record.get("kit") if isinstance(record, dict) else None
        if claimed != kit:
            raise RestoreError(f"the source holds events of kit {str(claimed)[:40]!r}, not of this kit ({kit}): "
                               "restore a spare initialised with that kit's id")
        try:
            row = validate.validate_record(record, kit, now)
        except ValueError as e:
            out.problem = f"seq {validate.record_seq(record)}: {e}"
            break
        if row["seq"] != expected:
            out.problem = f"seq {expected} is missing (the next one is {row['seq']})"
            break
        digest = _chain_hash(prev, row["seq"], row["id"], kit, row["type"], row["payload"], row["hlc"],
                             row["wall_time"], int(row["clock_synced"]))
        if digest != row["hash"]:
            out.problem = f"seq {row['seq']}: its hash does not link to the event before (damaged or edited)"
            break
        out.rows.append(row)
        prev, expected = row["hash"], expected + 1
    return out


class _Asker:
    """Questions to the site's mirrors over this kit's broker, each answer matched by a nonce."""

    def __init__(self, config, timeout: float, ask_every: float = 2.0):
        from kit.bus import Bus

        self.kit, self.site, self.timeout, self.ask_every = config.kit_id, config.site, timeout, ask_every
        self.bus = Bus.from_config(config, "restore", will=False)
        self.nonce = secrets.token_hex(8)
        self.answers: list[dict] = []
        self.got = threading.Event()
        if not self.bus.start(wait=5):
            raise RestoreError(f"cannot reach this kit's broker ({config['mqtt.host']}:{config['mqtt.port']})")
        self.bus.subscribe(restore_topic(self.site, self.kit), self._on_answer, qos=1, max_bytes=1024 * 1024)
        time.sleep(0.3)  # the subscription is in place before the first question

    def _on_answer(self, _topic: str, msg: dict) -> None:
        if msg.get("nonce") == self.nonce and msg.get("kit") == self.kit and isinstance(msg.get("events"), list):
            self.answers.append(msg)
            self.got.set()

    def ask(self, match: dict, **question) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            self.answers.clear()
            self.got.clear()
            while not self.got.is_set():
                if time.monotonic() > deadline:
                    raise RestoreError("no mirror of this site answered: is the hub on and the site link up? "
                                       "(`fieldkit mirror status` on the hub)")
                self.bus.publish(ask_topic(self.site, self.kit), {"kit": self.kit, "nonce": self.nonce, **question},
                                 qos=1)
                self.got.wait(self.ask_every)
            answer = next((a for a in self.answers if all(a.get(k) == v for k, v in match.items())), None)
            if answer is not None:
                check_kit(answer.get("mirror"), "mirror")
                return answer

    def close(self) -> None:
        self.bus.stop()


def fetch_from_hub(config, timeout: float = 30.0) -> tuple[list[dict], list[dict], str]:
    """Every event the site's mirror holds of this kit, one batch at a time, and its documents."""
    asker = _Asker(config, timeout)
    try:
        records: list[dict] = []
        while True:
            after = records[-1]["seq"] if records else 0
            answer = asker.ask({"after": after}, after=after)
            if not answer["events"]:
                break
            records.extend(answer["events"])
        documents: list[dict] = []
        while True:
            answer = asker.ask({"doc": len(documents)}, after=0, doc=len(documents))
            if not isinstance(answer.get("document"), dict):
                break
            documents.append(answer["document"])
        return records, documents, answer["mirror"]
    finally:
        asker.close()


def import_documents(config, db, documents: list[dict]) -> list[str]:
    """Import the dead kit's documents with each feature's importer; one line per document."""
    import base64
    import hashlib

    from kit.documents import DocumentError, import_document

    done = []
    for doc in documents:
        try:
            content = base64.b64decode(str(doc.get("content", "")), validate=True)
            if hashlib.sha256(content).hexdigest() != doc.get("sha256"):
                raise ValueError("its content does not match its sha256")
            import_document(config, db, str(doc["kind"]), content, str(doc["filename"]), source="restore")
            done.append(f"{doc['kind']} ({doc['filename']})")
        except (DocumentError, ValueError, KeyError) as e:
            log.warning("event=restore_document_refused kind=%r error=%r", str(doc.get("kind"))[:64], str(e)[:200])
            done.append(f"{str(doc.get('kind'))[:64]}: NOT restored ({e})")
    return done


def restore(config, db, features, records: list, source: str, documents: list[dict] | None = None) -> dict:
    """Put a verified ledger into this empty kit and rebuild its tables; what was restored."""
    kit = config.kit_id
    first = validate.record_seq(records[0]) if records else 1
    if isinstance(first, int) and first > 1:
        # A truncated ledger (personal data erased, or ledger.keep_days): its first events are only at HQ,
        # and the kit's tables cannot be rebuilt from the rest (kit/ledger.py rebuild), so nothing is taken.
        raise RestoreError(
            f"{source} holds this kit's ledger only from seq {first}: the kit truncated the events before it "
            "(they are at HQ), so its tables cannot be rebuilt from it. Set the spare up as a new kit instead "
            "(see docs/privacy.md)")
    if last_seq(db):
        raise RestoreError(f"this kit's ledger is not empty ({last_seq(db)} events): restore only goes onto a "
                           "freshly initialised spare")
    checked = check_records(records, kit)
    if not checked.rows:
        raise RestoreError(f"nothing to restore from {source}: " + (checked.problem or "it holds no events of "
                                                                    f"kit {kit}"))
    if checked.problem:
        log.warning("event=restore_partial kit=%s source=%s upto=%d reason=%r", kit, source, checked.rows[-1]["seq"],
                    checked.problem)
    lock = DatabaseLock(db.path)
    try:
        lock.exclusive()
    except Exception as e:
        raise RestoreError(f"stop this kit's services first (`fieldkit down`, or systemctl stop 'fieldkit-*'): {e}") \
            from None
    try:
        with db.transaction() as conn:
            conn.executemany(
                "INSERT INTO events (seq, id, kit, type, payload, hlc, wall_time, clock_synced, hash)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                [(r["seq"], r["id"], kit, r["type"], pack(r["payload"]), r["hlc"], r["wall_time"],
                  int(r["clock_synced"]), r["hash"]) for r in checked.rows])
            top = max(r["hlc"] for r in checked.rows)
            conn.execute("INSERT INTO kit_hlc (id, last) VALUES (1, ?) ON CONFLICT(id) DO UPDATE"
                         " SET last = MAX(last, excluded.last)", (top,))
            release_hold(conn)
    finally:
        lock.release()
    # The documents after the ledger: an import that records an event continues the restored chain.
    imported = import_documents(config, db, documents or [])
    replayed = rebuild(db, features)
    count, problems = verify(db)
    log.info("event=restored kit=%s source=%s events=%d replayed=%s", kit, source, count, replayed)
    return {"kit": kit, "source": source, "events": count, "upto": checked.rows[-1]["seq"],
            "replayed": replayed, "problems": problems, "stopped_at": checked.problem, "documents": imported}
