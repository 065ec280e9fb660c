"""HQ's HTTP app: a stateless Flask app over SQLAlchemy Core (run several behind a load balancer).

Kits talk to ``/api/v1/kits/<kit>/...`` with ``Authorization: Bearer <kit token>``; organisers read the
reconciliation report with an admin token (HTTP basic auth, any user name, the token as password).
"""

from __future__ import annotations

import json
import logging
import zlib
from urllib.parse import quote

from flask import Flask, Response, jsonify, request
from sqlalchemy.engine import Engine
from werkzeug.exceptions import HTTPException

from sync.hq import documents, integrity, personal, store
from sync.hq.openapi import openapi_document
from sync.hq.store import HQError
from sync.hq.throttle import AuthThrottle, client_address, parse_networks

log = logging.getLogger("fieldkit.hq.app")

DEFAULT_MAX_BODY = 16 * 1024 * 1024  # compressed bytes on the wire
DEFAULT_MAX_RECORDS = 5000
INFLATE_RATIO = 20  # a gzip body may expand at most this much (JSON lines compress ~8x): no gzip bombs
MAX_INFLATED = 64 * 1024 * 1024  # and never beyond this, whatever hq.max_body_mb says


def read_body(max_bytes: int) -> bytes:
    length = request.content_length
    if length is not None and length > max_bytes:
        raise HQError(f"the body is {length} bytes; the limit is {max_bytes}", 413, "too_large")
    data = request.stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise HQError(f"the body is larger than the {max_bytes} byte limit", 413, "too_large")
    if length is not None and len(data) != length:
        raise HQError(f"the body is truncated: {len(data)} of {length} bytes", 400, "truncated")
    return data


def inflate(data: bytes, limit: int) -> bytes:
    """Gunzip with a size cap; a cut-off stream is an error, not a shorter batch."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as e:
        raise HQError(f"the body is not valid gzip ({e})", 400, "bad_gzip") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise HQError(f"the batch expands to more than {limit} bytes", 413, "too_large")
    if not inflater.eof:
        raise HQError("the gzip stream is truncated (the batch was cut off)", 400, "truncated")
    if inflater.unused_data:
        raise HQError("unexpected bytes after the gzip stream", 400, "bad_gzip")
    return out


class InvalidLine:
    """A line of the batch that is not JSON: refused on its own, the lines around it still count."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


_BLANK = " \t\n\r\x0b\x0c"  # what bytes.strip() strips: a line of only these is skipped
_parse = json.JSONDecoder().decode


def parse_lines(text: bytes, max_records: int) -> list[object]:
    # The body is decoded once, not line by line; a line the quick parse refuses (or a body that is not
    # UTF-8 as a whole) is parsed again from its bytes exactly as before, so its answer is unchanged.
    try:
        lines: list = text.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        lines = text.split(b"\n")
    records: list[object] = []
    for n, line in enumerate(lines, 1):
        if not line.strip(_BLANK if isinstance(line, str) else None):
            continue
        if len(records) >= max_records:
            raise HQError(f"a batch holds at most {max_records} records", 413, "too_many_records")
        if isinstance(line, str):
            try:
                records.append(_parse(line))
                continue
            except (ValueError, RecursionError):
                line = line.encode("utf-8")
        try:
            records.append(json.loads(line))
        except (UnicodeDecodeError, ValueError):
            records.append(InvalidLine(f"line {n} is not valid JSON"))
        except RecursionError:  # '[' * 100000: nested too deep for the parser, refused like any bad line
            records.append(InvalidLine(f"line {n} is nested too deeply"))
    if not records:
        raise HQError("the batch is empty", 400, "empty")
    return records


def bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else ""


def create_app(engine: Engine, max_body_bytes: int = DEFAULT_MAX_BODY, max_records: int = DEFAULT_MAX_RECORDS,
               card_match_minutes: int = 10, tz: str = "UTC", trusted_proxies: list[str] | None = None,
               throttle: AuthThrottle | None = None, bundle_dir: str | None = None) -> Flask:
    """HQ's app. ``trusted_proxies``: peers whose X-Forwarded-For names the client (hq.trusted_proxies);
    ``bundle_dir``: where release bundles are kept (sync/hq/bundles.py; None: HQ offers none)."""
    app = Flask("fieldkit_hq")
    app.config["HQ_ENGINE"] = engine
    app.config["HQ_BUNDLE_DIR"] = bundle_dir
    proxies = parse_networks(trusted_proxies or [])
    throttle = throttle or AuthThrottle(engine)
    app.config["HQ_THROTTLE"] = throttle

    @app.errorhandler(HQError)
    def _hq_error(e: HQError):
        # A throttled address is logged once per real failure (event=auth_throttled), not per 429.
        (log.debug if e.status == 429 else log.warning)("event=request_refused path=%s status=%s code=%s reason=%r", request.path, e.status, e.code, str(e))
        return jsonify(error=str(e), code=e.code), e.status, e.headers

    @app.errorhandler(HTTPException)
    def _http_error(e: HTTPException):
        return jsonify(error=e.description, code=e.name.lower().replace(" ", "_")), e.code

    def address() -> str:
        return client_address(request.remote_addr, request.headers.get("X-Forwarded-For"), proxies)

    def guarded(check):
        """Run a token check under the per-address throttle: 429 before looking at the token when blocked."""
        who = address()
        wait, known = throttle.check(who)
        if wait:
            raise HQError(f"too many bad tokens from {who}; try again in {wait} s", 429, "throttled",
                          headers={"Retry-After": str(wait)})
        try:
            result = check()
        except HQError as e:
            if e.status == 401:
                failures = throttle.failed(who)
                log.warning("event=bad_token address=%s path=%s failures=%d", who, request.path, failures)
            raise
        if known:
            throttle.succeeded(who)
        return result

    def kit_auth(kit: str) -> dict:
        """guarded() for a kit token, with the throttle look-up and the kit's row on one connection."""
        who = address()
        with engine.connect() as conn:
            wait, known = throttle.check(who, conn)
            if wait:
                raise HQError(f"too many bad tokens from {who}; try again in {wait} s", 429, "throttled",
                              headers={"Retry-After": str(wait)})
            try:
                if not store.KIT_ID_RE.match(kit):  # never hand odd bytes (a NUL) to the database in a query
                    raise HQError("unknown kit or wrong token", 401, "unauthorized")
                row = store.authenticate_kit(engine, kit, bearer_token(), conn)
            except HQError as e:
                if e.status == 401:
                    conn.rollback()  # SQLite: the read's lock, before the failure is counted
                    failures = throttle.failed(who)
                    log.warning("event=bad_token address=%s path=%s failures=%d", who, request.path, failures)
                raise
        if known:
            throttle.succeeded(who)
        return row

    app.config["HQ_GUARDED"] = guarded

    @app.get("/api/v1/health")
    def health():
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except Exception as e:  # the database is down: tell the load balancer and the kits
            log.warning("event=health_db_down error=%r", str(e)[:200])
            return jsonify(status="degraded", error="database unreachable"), 503
        return jsonify(status="ok", time=store.now_utc().isoformat())

    @app.get("/api/v1/kits/<kit>/hwm")
    def hwm(kit: str):
        """The mark and the holes below it: the agent re-sends every missing range each session."""
        kit_auth(kit)
        with engine.connect() as conn:
            mark = integrity.stored_mark(conn, kit)
            ranges, missing = integrity.missing_ranges(conn, kit)
        return jsonify(kit=kit, hwm=mark, missing=[list(r) for r in ranges], missing_count=missing,
                       time=store.now_utc().isoformat())

    @app.post("/api/v1/kits/<kit>/events")
    def upload(kit: str):
        kit_auth(kit)
        body = read_body(max_body_bytes)
        if request.headers.get("Content-Encoding", "").lower() == "gzip":
            body = inflate(body, min(max_body_bytes * INFLATE_RATIO, MAX_INFLATED))
        records = parse_lines(body, max_records)
        results, mark = store.ingest_batch(engine, kit, records, max_lead=max_records)
        for result, record in zip(results, records, strict=True):
            if isinstance(record, InvalidLine):
                result.error = record.reason
        counts = {s: sum(r.status == s for r in results) for s in ("stored", "duplicate", "refused")}
        answer = {"results": [r.as_dict() for r in results], "hwm": mark, **counts}
        # json.dumps, not jsonify: Flask's provider sorts and walks every result again, per record.
        return Response(json.dumps(answer, separators=(",", ":")), 422 if counts["refused"] else 200,
                        mimetype="application/json")

    @app.post("/api/v1/kits/<kit>/personal")
    def upload_personal(kit: str):
        """Personal records (an e-mail given with consent): stored once each, answered per record."""
        kit_auth(kit)
        try:
            body = json.loads(read_body(max_body_bytes))
        except ValueError:
            raise HQError("send {\"records\": [...]} as JSON", 400, "bad_body") from None
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or len(records) > personal.MAX_RECORDS:
            raise HQError(f"send {{\"records\": [...]}}, at most {personal.MAX_RECORDS} per request", 400, "bad_body")
        results = personal.store_personal(engine, kit, records)
        refused = sum(r["status"] == "refused" for r in results)
        return jsonify(results=results, stored=sum(r["status"] == "stored" for r in results), refused=refused), \
            422 if refused else 200

    @app.get("/api/v1/kits/<kit>/documents")
    def manifest(kit: str):
        row = kit_auth(kit)
        return jsonify(documents=documents.manifest_for_kit(engine, kit, row["site"]))

    @app.get("/api/v1/kits/<kit>/documents/<int:doc_id>")
    def document(kit: str, doc_id: int):
        row = kit_auth(kit)
        if not 1 <= doc_id < 2**31:  # ids are database integers; a bigger number overflows the driver
            raise HQError(f"no document {doc_id} for kit {kit}", 404, "not_found")
        meta, content = documents.document_content(engine, doc_id, kit, row["site"])
        headers = {"X-Document-Kind": meta["kind"], "X-Document-Version": str(meta["version"]),
                   "X-Document-Sha256": meta["sha256"], "X-Document-Filename": quote(meta["filename"])}
        return Response(content, mimetype="application/octet-stream", headers=headers)

    @app.get("/api/v1/openapi.json")
    def openapi():
        return jsonify(openapi_document())

    from sync.hq.report_web import register_report_routes

    register_report_routes(app, engine, card_match_minutes, tz, guarded)
    from sync.hq.relay import register_relay_routes

    register_relay_routes(app, engine, max_body_bytes, max_records)

    from pathlib import Path

    from sync.hq.fleet_web import register_fleet_routes

    register_fleet_routes(app, engine, Path(bundle_dir) if bundle_dir else None, kit_auth, guarded)
    return app
