"""The hub's side of one uplink for the whole site: upload the mirrored events of every kit of the site.

When the hub is joined to an HQ whose token for it is a relay token (sync/hq/relay.py), it sends each
mirrored kit's events, in seq order from what HQ has acknowledged, to
``/api/v1/kits/<hub>/relay/events?origin=<kit>``. HQ's mark and missing ranges for that kit come back; the
hub keeps them (``relay_cursor`` in mirror.db) and hands them to the kit in its mirror acknowledgement
(``hq_upto``), so a kit knows HQ holds its events even if it never reached HQ itself. Missing ranges
are sent again from the mirror. Its own events the hub uploads itself, as every kit does.
"""

from __future__ import annotations

import gzip
import json
import logging

import sqlalchemy as sa

from sync.client import HQClient, HQRejectsKit, SyncError
from sync.credentials import NotJoined, hq_credentials

log = logging.getLogger("fieldkit.sync.relay")

BATCH = 500
_meta = sa.MetaData()
cursor = sa.Table(
    "relay_cursor", _meta,
    sa.Column("kit", sa.String(32), primary_key=True),
    sa.Column("hq_upto", sa.BigInteger, nullable=False),  # every seq <= this HQ holds (no hole below)
    sa.Column("hq_url", sa.String(500), nullable=False),
)


class RelayRefused(SyncError):
    """HQ will not take this kit's events from this hub (not a relay token, another site's kit)."""


class Relay:
    def __init__(self, config, hub):
        self.config, self.hub = config, hub
        self.engine = hub.engine
        _meta.create_all(self.engine)
        self.client: HQClient | None = None
        self.refused: dict[str, str] = {}

    def hq_upto(self, kit: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(cursor.c.hq_upto).where(cursor.c.kit == kit)).scalar() or 0)

    def _set(self, kit: str, upto: int, url: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(cursor.delete().where(cursor.c.kit == kit))
            conn.execute(cursor.insert().values(kit=kit, hq_upto=upto, hq_url=url))

    def hq_client(self) -> HQClient:
        url, token = hq_credentials(self.config)
        if self.client is None or self.client.token != token:
            self.client = HQClient(url, token, self.config.kit_id, float(self.config["sync.timeout_seconds"]),
                                   self.config["sync.hq_ca_file"])
        return self.client

    def upload_kit(self, kit: str) -> int:
        """Send one batch of ``kit``'s mirrored events HQ lacks; returns how many were sent."""
        url, _ = hq_credentials(self.config)
        start = self.hq_upto(kit)
        records = self.hub.events(kit, start, BATCH)
        if not records:
            return 0
        body = gzip.compress(b"".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
                                      for r in records))
        try:
            status, _, data = self.hq_client().request(
                "POST", f"/api/v1/kits/{self.config.kit_id}/relay/events?origin={kit}", body=body,
                headers={"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"})
        except HQRejectsKit as e:
            raise RelayRefused(str(e)) from None
        try:
            answer = json.loads(data)
        except ValueError:
            raise SyncError(f"HQ answered {status} with something that is not JSON") from None
        if status != 200 or not isinstance(answer, dict) or not isinstance(answer.get("hwm"), int):
            raise RelayRefused(str(answer.get("error") if isinstance(answer, dict) else data[:200]))
        missing = [r for r in answer.get("missing", []) if isinstance(r, list) and len(r) == 2
                   and all(isinstance(v, int) for v in r)]
        # Acknowledged: up to HQ's mark, or up to the first hole (sent again from the mirror next time).
        upto = min([answer["hwm"]] + [r[0] - 1 for r in missing])
        self._set(kit, max(0, upto), url)
        log.info("event=relayed kit=%s sent=%d stored=%s hq_upto=%d", kit, len(records), answer.get("stored"), upto)
        return len(records)

    def step(self) -> int:
        """One round over the mirrored kits; returns events sent. Quiet while the hub is not joined."""
        sent = 0
        try:
            for row in self.hub.kits():
                kit = row["kit"]
                if kit == self.config.kit_id or row["upto"] <= self.hq_upto(kit):
                    continue
                try:
                    n = self.upload_kit(kit)
                except RelayRefused as e:
                    if self.refused.get(kit) != str(e):
                        log.warning("event=relay_refused kit=%s reason=%r", kit, str(e)[:200])
                    self.refused[kit] = str(e)
                    continue
                self.refused.pop(kit, None)
                sent += n
                self.hub.acknowledge(kit)  # the kit learns HQ's acknowledgement through the hub
        except NotJoined:
            return 0
        except SyncError as e:  # HQ unreachable: offline is normal, the next round tries again
            log.info("event=relay_later reason=%r", str(e)[:200])
            if self.client:
                self.client.close()
        return sent
