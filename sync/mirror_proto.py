"""The site mirror's messages: topics, batches under the broker's size limit, and checks of what a peer sends.

Everything travels in the site tree (``fieldkit/site/<site>/...``), which every kit's broker bridges to
the hub's both ways (kit/sitelink.py ``bridge_conf``):

- ``mirror/<kit>``: a batch of a kit's own ledger events, as uploaded to HQ (QoS 1);
- ``mirror_ack/<kit>/<mirror>``: what a mirror holds of that kit (retained: a spare flashed with a
  mirrored kit's id learns it as soon as its bridge is up);
- ``mirror_hub/<mirror>``: a mirror announcing itself (retained), so a kit alone sends nothing;
- ``mirror_ask/<kit>`` and ``mirror_restore/<kit>``: a spare asking for its ledger back, and the answers.
"""

from __future__ import annotations

import json

from kit import topics
from kit.sitepeer import KIT_RE, is_count, valid_kit_id

MAX_BATCH_EVENTS = 500
# Well under Mosquitto's message_size_limit (1 MiB, kit/appliance/broker.py) and the bus's 1 MiB.
MAX_BATCH_BYTES = 256 * 1024
MAX_MESSAGE_BYTES = 1024 * 1024
MAX_MISSING_RANGES = 50


class MirrorRefused(ValueError):
    """A mirror message that is not used; ``reason`` is a short word for the log line."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def _root(site: str) -> str:
    return f"{topics.SITE_ROOT}/{site}"


def batch_topic(site: str, kit: str = "+") -> str:
    return f"{_root(site)}/mirror/{kit}"


def ack_topic(site: str, kit: str = "+", mirror: str = "+") -> str:
    return f"{_root(site)}/mirror_ack/{kit}/{mirror}"


def hub_topic(site: str, mirror: str = "+") -> str:
    return f"{_root(site)}/mirror_hub/{mirror}"


def ask_topic(site: str, kit: str = "+") -> str:
    return f"{_root(site)}/mirror_ask/{kit}"


def restore_topic(site: str, kit: str = "+") -> str:
    return f"{_root(site)}/mirror_restore/{kit}"


def last_part(topic: str, back: int = 1) -> str:
    parts = topic.split("/")
    return parts[-back] if len(parts) >= back else ""


def batches(records: list[dict]) -> list[list[dict]]:
    """Split records into batches of at most MAX_BATCH_EVENTS and MAX_BATCH_BYTES of JSON each."""
    out: list[list[dict]] = []
    current: list[dict] = []
    size = 0
    for record in records:
        n = len(json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()) + 1
        if current and (len(current) >= MAX_BATCH_EVENTS or size + n > MAX_BATCH_BYTES):
            out.append(current)
            current, size = [], 0
        current.append(record)
        size += n
    if current:
        out.append(current)
    return out


def check_kit(value: object, what: str) -> str:
    if not valid_kit_id(value):
        raise MirrorRefused("bad_kit", f"{what} {str(value)[:40]!r}")
    return value  # type: ignore[return-value]


def check_batch(msg: object, topic_kit: str, site: str) -> list[dict]:
    """The records of a kit's batch (each still checked by HQ's validation on ingest), or MirrorRefused."""
    if not isinstance(msg, dict):
        raise MirrorRefused("not_an_object")
    check_kit(topic_kit, "topic kit")
    if msg.get("kit") != topic_kit:
        raise MirrorRefused("kit_mismatch", f"batch of {str(msg.get('kit'))[:40]!r} on the topic of {topic_kit!r}")
    if msg.get("site") != site:
        raise MirrorRefused("other_site", f"kit {topic_kit} says it is of site {str(msg.get('site'))[:40]!r}")
    events = msg.get("events")
    if not isinstance(events, list) or not events or len(events) > MAX_BATCH_EVENTS:
        raise MirrorRefused("bad_events", f"1 to {MAX_BATCH_EVENTS} events per batch")
    return events


def check_ack(msg: object, topic_kit: str, topic_mirror: str) -> dict:
    """A mirror's acknowledgement: {mirror, upto, mark, missing, hq_upto}; MirrorRefused if malformed."""
    if not isinstance(msg, dict):
        raise MirrorRefused("not_an_object")
    check_kit(topic_mirror, "mirror")
    if msg.get("mirror") != topic_mirror or msg.get("kit") != topic_kit:
        raise MirrorRefused("kit_mismatch")
    upto, mark, hq_upto = msg.get("upto"), msg.get("mark"), msg.get("hq_upto", 0)
    if not (is_count(upto) and is_count(mark) and is_count(hq_upto)) or upto > mark:
        raise MirrorRefused("bad_cursor", f"upto={str(upto)[:20]} mark={str(mark)[:20]}")
    missing = msg.get("missing", [])
    if not isinstance(missing, list) or len(missing) > MAX_MISSING_RANGES or not all(
            isinstance(r, list) and len(r) == 2 and is_count(r[0]) and is_count(r[1]) and r[0] <= r[1]
            for r in missing):
        raise MirrorRefused("bad_missing")
    return {"mirror": topic_mirror, "upto": upto, "mark": mark, "missing": missing, "hq_upto": hq_upto}


def check_ask(msg: object, topic_kit: str) -> tuple[int, str, int | None]:
    """(after, nonce, document index or None) of a restore request; MirrorRefused if malformed."""
    if not isinstance(msg, dict):
        raise MirrorRefused("not_an_object")
    check_kit(topic_kit, "topic kit")
    after, nonce = msg.get("after"), msg.get("nonce")
    if msg.get("kit") != topic_kit or not is_count(after) or not isinstance(nonce, str) or not KIT_RE.match(nonce):
        raise MirrorRefused("bad_request")
    doc = msg.get("doc")
    if doc is not None and not (is_count(doc) and doc < 1000):
        raise MirrorRefused("bad_request", "doc")
    return after, nonce, doc


def is_mirror(config) -> bool:
    """This kit keeps the site's mirror: it is the hub, or one of ``site.mirror_peers``."""
    return bool(config["site.hub"]) or config.kit_id in (config["site.mirror_peers"] or [])
