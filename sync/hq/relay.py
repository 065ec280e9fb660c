"""HQ's side of a site's single uplink: a hub uploads the mirrored events of the other kits of its site.

``fieldkit hq kits add HUB --site SITE --relay`` registers the hub with a relay token: that token may
upload, besides the hub's own events, the events of kits registered for the same site, and of no
other. They go through the same idempotent ingest as a kit's own upload (each event stored once
whoever sends it: a kit that later reaches HQ itself finds its events there), and every relayed batch
is recorded in ``hq_relay_deliveries`` (which hub delivered which seqs of which kit). The answer gives
the origin kit's mark and missing ranges, which the hub passes back to that kit over the site link.

The same token reads the documents HQ has for each kit of its site (``relay/documents?origin=KIT``,
exactly what that kit would get itself), which the hub passes on over the site link (sync/relay_docs.py).
"""

from __future__ import annotations

import json
import logging
from urllib.parse import quote

import sqlalchemy as sa
from flask import Response, jsonify, request

from sync.hq import documents, integrity, schema, store
from sync.hq.store import HQError

log = logging.getLogger("fieldkit.hq.relay")

relays = sa.Table(
    "hq_relays", schema.metadata,
    sa.Column("kit", sa.String(32), primary_key=True),  # the hub
    sa.Column("site", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

deliveries = sa.Table(
    "hq_relay_deliveries", schema.metadata,
    sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("origin_kit", sa.String(32), nullable=False, index=True),
    sa.Column("via_kit", sa.String(32), nullable=False),
    sa.Column("first_seq", sa.BigInteger, nullable=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("records", sa.Integer, nullable=False),
    sa.Column("stored", sa.Integer, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)


def allow_relay(engine, hub: str, site: str) -> None:
    """Let ``hub``'s token upload the events of the other kits of ``site``."""
    with engine.begin() as conn:
        conn.execute(relays.delete().where(relays.c.kit == hub))
        conn.execute(relays.insert().values(kit=hub, site=site, created_at=store.now_utc()))
    log.info("event=relay_allowed kit=%s site=%s", hub, site)


def _relay_site(engine, hub: dict, origin: str) -> dict:
    """The origin kit's row if ``hub`` may relay for it; HQError otherwise."""
    with engine.connect() as conn:
        relay = conn.execute(sa.select(relays).where(relays.c.kit == hub["kit"])).first()
        row = conn.execute(sa.select(schema.kits).where(schema.kits.c.kit == origin)).first() \
            if store.KIT_ID_RE.match(origin) else None
    if relay is None or relay.site != hub["site"]:
        raise HQError(f"kit {hub['kit']} has no relay token: `fieldkit hq kits add {hub['kit']} --site "
                      f"{hub['site']} --relay --replace`", 403, "not_a_relay")
    if row is None or row.site != relay.site:
        raise HQError(f"kit {origin[:40]!r} is not a kit of site {relay.site}: a hub relays its own site only",
                      403, "other_site")
    if row.disabled:
        raise HQError(f"kit {origin} is disabled at HQ", 403, "disabled")
    return dict(row._mapping)


def register_relay_routes(app, engine, max_body_bytes: int, max_records: int) -> None:
    from sync.hq.app import INFLATE_RATIO, MAX_INFLATED, bearer_token, inflate, parse_lines, read_body

    guarded = app.config["HQ_GUARDED"]

    def hub_auth(hub: str) -> dict:
        def check() -> dict:
            if not store.KIT_ID_RE.match(hub):
                raise HQError("unknown kit or wrong token", 401, "unauthorized")
            return store.authenticate_kit(engine, hub, bearer_token())

        return guarded(check)

    @app.post("/api/v1/kits/<kit>/relay/events")
    def relay_upload(kit: str):
        """Another kit's events (``?origin=KIT``) through its site's hub: ingested as that kit's own."""
        hub, origin = kit, request.args.get("origin", "")
        via = hub_auth(hub)
        _relay_site(engine, via, origin)
        body = read_body(max_body_bytes)
        if request.headers.get("Content-Encoding", "").lower() == "gzip":
            body = inflate(body, min(max_body_bytes * INFLATE_RATIO, MAX_INFLATED))
        records = parse_lines(body, max_records)
        results = store.ingest(engine, origin, records, max_lead=max_records)
        seqs = [r.seq for r in results if r.seq is not None]
        counts = {s: sum(r.status == s for r in results) for s in ("stored", "duplicate", "refused")}
        with engine.begin() as conn:
            if seqs:
                conn.execute(deliveries.insert().values(origin_kit=origin, via_kit=hub, first_seq=min(seqs),
                                                        last_seq=max(seqs), records=len(results),
                                                        stored=counts["stored"], at=store.now_utc()))
        with engine.connect() as conn:
            mark = integrity.stored_mark(conn, origin)
            ranges, _ = integrity.missing_ranges(conn, origin, limit=50)
        log.info("event=relay_ingested origin=%s via=%s records=%d stored=%d", origin, hub, len(results),
                 counts["stored"])
        answer = {"kit": origin, "via": hub, "hwm": mark, "missing": [list(r) for r in ranges], **counts,
                  "refusals": [r.as_dict() for r in results if r.status == "refused"][:50]}
        return Response(json.dumps(answer, separators=(",", ":")), 200, mimetype="application/json")

    @app.get("/api/v1/kits/<kit>/relay/documents")
    def relay_manifest(kit: str):
        """The documents HQ has for another kit of the hub's site (``?origin=KIT``), as that kit's manifest."""
        origin = request.args.get("origin", "")
        row = _relay_site(engine, hub_auth(kit), origin)
        return jsonify(documents=documents.manifest_for_kit(engine, origin, row["site"]))

    @app.get("/api/v1/kits/<kit>/relay/documents/<int:doc_id>")
    def relay_document(kit: str, doc_id: int):
        """One of those documents' bytes; only one that applies to the origin kit."""
        origin = request.args.get("origin", "")
        row = _relay_site(engine, hub_auth(kit), origin)
        if not 1 <= doc_id < 2**31:
            raise HQError(f"no document {doc_id} for kit {origin}", 404, "not_found")
        meta, content = documents.document_content(engine, doc_id, origin, row["site"])
        log.info("event=relay_document origin=%s via=%s id=%d kind=%s", origin, kit, doc_id, meta["kind"])
        return Response(content, mimetype="application/octet-stream", headers={
            "X-Document-Kind": meta["kind"], "X-Document-Version": str(meta["version"]),
            "X-Document-Sha256": meta["sha256"], "X-Document-Filename": quote(meta["filename"])})


def delivered_by(engine, origin: str) -> list[dict]:
    """Which hubs delivered which seqs of a kit (what `hq kits list` could show)."""
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            sa.select(deliveries).where(deliveries.c.origin_kit == origin).order_by(deliveries.c.id))]
