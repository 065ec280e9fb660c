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

from sync.hq import documents, store
from sync.hq.store import HQError

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


def parse_lines(text: bytes, max_records: int) -> list[object]:
    records: list[object] = []
    for n, line in enumerate(text.split(b"\n"), 1):
        if not line.strip():
            continue
        if len(records) >= max_records:
            raise HQError(f"a batch holds at most {max_records} records", 413, "too_many_records")
        try:
            records.append(json.loads(line))
        except (UnicodeDecodeError, ValueError):
            records.append(InvalidLine(f"line {n} is not valid JSON"))
    if not records:
        raise HQError("the batch is empty", 400, "empty")
    return records


def bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else ""


def create_app(engine: Engine, max_body_bytes: int = DEFAULT_MAX_BODY, max_records: int = DEFAULT_MAX_RECORDS,
               card_match_minutes: int = 10, tz: str = "UTC") -> Flask:
    app = Flask("fieldkit_hq")
    app.config["HQ_ENGINE"] = engine

    @app.errorhandler(HQError)
    def _hq_error(e: HQError):
        log.warning("event=request_refused path=%s status=%s code=%s reason=%r", request.path, e.status, e.code, str(e))
        return jsonify(error=str(e), code=e.code), e.status

    @app.errorhandler(HTTPException)
    def _http_error(e: HTTPException):
        return jsonify(error=e.description, code=e.name.lower().replace(" ", "_")), e.code

    def kit_auth(kit: str) -> dict:
        return store.authenticate_kit(engine, kit, bearer_token())

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
        kit_auth(kit)
        return jsonify(kit=kit, hwm=store.high_water_mark(engine, kit), time=store.now_utc().isoformat())

    @app.post("/api/v1/kits/<kit>/events")
    def upload(kit: str):
        kit_auth(kit)
        body = read_body(max_body_bytes)
        if request.headers.get("Content-Encoding", "").lower() == "gzip":
            body = inflate(body, min(max_body_bytes * INFLATE_RATIO, MAX_INFLATED))
        records = parse_lines(body, max_records)
        results = store.ingest(engine, kit, records)
        for result, record in zip(results, records, strict=True):
            if isinstance(record, InvalidLine):
                result.error = record.reason
        counts = {s: sum(r.status == s for r in results) for s in ("stored", "duplicate", "refused")}
        answer = {"results": [r.as_dict() for r in results], "hwm": store.high_water_mark(engine, kit), **counts}
        return jsonify(answer), (422 if counts["refused"] else 200)

    @app.get("/api/v1/kits/<kit>/documents")
    def manifest(kit: str):
        row = kit_auth(kit)
        return jsonify(documents=documents.manifest_for_kit(engine, kit, row["site"]))

    @app.get("/api/v1/kits/<kit>/documents/<int:doc_id>")
    def document(kit: str, doc_id: int):
        row = kit_auth(kit)
        meta, content = documents.document_content(engine, doc_id, kit, row["site"])
        headers = {"X-Document-Kind": meta["kind"], "X-Document-Version": str(meta["version"]),
                   "X-Document-Sha256": meta["sha256"], "X-Document-Filename": quote(meta["filename"])}
        return Response(content, mimetype="application/octet-stream", headers=headers)

    @app.get("/api/v1/openapi.json")
    def openapi():
        return jsonify(openapi_document())

    from sync.hq.report_web import register_report_routes

    register_report_routes(app, engine, card_match_minutes, tz)
    return app


def openapi_document() -> dict:
    """HQ's API as OpenAPI 3, so it can be read, generated against and fuzzed."""
    kit_param = {"name": "kit", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"}}
    bearer = [{"kitToken": []}]
    errors = {"401": {"description": "unknown kit or wrong token"}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "Field Kit HQ", "version": "1",
                 "description": "Kits upload their ledger and fetch documents; organisers read the reconciliation."},
        "components": {"securitySchemes": {"kitToken": {"type": "http", "scheme": "bearer"},
                                           "adminToken": {"type": "http", "scheme": "basic"}}},
        "paths": {
            "/api/v1/health": {"get": {"summary": "HQ and its database answer", "responses": {
                "200": {"description": "ok"}, "503": {"description": "database unreachable"}}}},
            "/api/v1/kits/{kit}/hwm": {"get": {"summary": "The highest seq HQ holds from this kit", "parameters": [kit_param],
                                               "security": bearer, "responses": {"200": {"description": "hwm"}, **errors}}},
            "/api/v1/kits/{kit}/events": {"post": {
                "summary": "Upload a batch of ledger events (JSON lines, Content-Encoding: gzip); answered record by record",
                "parameters": [kit_param], "security": bearer,
                "requestBody": {"required": True, "content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
                "responses": {"200": {"description": "every record stored or already there"},
                              "422": {"description": "some records refused, the others stored"},
                              "400": {"description": "not gzip, truncated or empty: nothing stored"},
                              "413": {"description": "too large or too many records: nothing stored"}, **errors}}},
            "/api/v1/kits/{kit}/documents": {"get": {"summary": "Per kind, the document this kit should have",
                                                     "parameters": [kit_param], "security": bearer,
                                                     "responses": {"200": {"description": "manifest"}, **errors}}},
            "/api/v1/kits/{kit}/documents/{id}": {"get": {
                "summary": "One document's bytes", "security": bearer,
                "parameters": [kit_param, {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "the file"}, "404": {"description": "no such document for this kit"},
                              **errors}}},
            "/api/v1/report": {"get": {"summary": "The reconciliation report as JSON", "security": [{"adminToken": []}],
                                       "parameters": [{"name": "site", "in": "query", "schema": {"type": "string"}}],
                                       "responses": {"200": {"description": "report"}, "401": {"description": "admin token needed"}}}},
        },
    }
