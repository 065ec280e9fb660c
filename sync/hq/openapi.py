"""HQ's API as OpenAPI 3, served at /api/v1/openapi.json: to read, to generate clients against, to fuzz.

Response schemas are what HQ really answers (tests/sync/test_hq_fuzz.py checks them with schemathesis).
"""

from __future__ import annotations

KIT_PARAM = {"name": "kit", "in": "path", "required": True,
             "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"}}
ORIGIN_PARAM = {**KIT_PARAM, "name": "origin", "in": "query"}  # the kit of its site a hub relays for
ERROR = {"type": "object", "required": ["error", "code"],
         "properties": {"error": {"type": "string"}, "code": {"type": "string"}}}
RANGE = {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2}
RESULT = {"type": "object", "required": ["id", "seq", "status"], "properties": {
    "id": {"type": "string", "nullable": True}, "seq": {"type": "integer", "nullable": True},
    "status": {"type": "string", "enum": ["stored", "duplicate", "refused"]}, "error": {"type": "string"}}}
UPLOAD = {"type": "object", "required": ["results", "hwm", "stored", "duplicate", "refused"], "properties": {
    "results": {"type": "array", "items": RESULT}, "hwm": {"type": "integer"}, "stored": {"type": "integer"},
    "duplicate": {"type": "integer"}, "refused": {"type": "integer"}}}
HWM = {"type": "object", "required": ["kit", "hwm", "missing", "missing_count", "time"], "properties": {
    "kit": {"type": "string"}, "hwm": {"type": "integer"}, "time": {"type": "string"},
    "missing": {"type": "array", "items": RANGE}, "missing_count": {"type": "integer"}}}
MANIFEST = {"type": "object", "required": ["documents"], "properties": {"documents": {"type": "array", "items": {
    "type": "object", "required": ["id", "kind", "version", "filename", "sha256"],
    "properties": {"id": {"type": "integer"}, "kind": {"type": "string"}, "version": {"type": "integer"},
                   "filename": {"type": "string"}, "sha256": {"type": "string"}}}}}}


EXAMPLE_LINE = ('{"id":"0b6f7c2e-5d1a-4c1e-9a51-3f1f0c8e9d01","kit":"door1","seq":1,"type":"pos.sale",'
                '"payload":{"total_cents":500},"hlc":115234567890,"wall_time":"2026-11-21T19:00:00.000+00:00",'
                '"clock_synced":true,"hash":"' + "0" * 64 + '"}')


def _json(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: str) -> dict:
    text = {"400": "the request as a whole is malformed: nothing stored", "401": "unknown kit or wrong token",
            "403": "the kit is disabled at HQ", "404": "no such thing for this kit",
            "413": "too large or too many records: nothing stored",
            "429": "too many bad tokens from this address: wait Retry-After seconds"}
    return {c: _json(text[c], ERROR) for c in codes}


STATUS = {"type": "object", "required": ["version", "arch", "backlog", "clock_trusted"], "additionalProperties": False,
          "properties": {"version": {"type": "string", "maxLength": 40}, "arch": {"type": "string", "maxLength": 16},
                         "battery_percent": {"type": "number", "minimum": 0, "maximum": 100, "nullable": True},
                         "backlog": {"type": "integer", "minimum": 0}, "lag_seconds": {"type": "integer", "nullable": True},
                         "mirror": {"type": "string", "nullable": True}, "clock_trusted": {"type": "boolean"},
                         "clock_time": {"type": "number"}, "open_incidents": {"type": "integer", "nullable": True}}}


def openapi_document() -> dict:
    kit_errors = _errors("401", "403", "429")
    bearer = [{"kitToken": []}]
    return {
        "openapi": "3.0.3",
        "info": {"title": "Field Kit HQ", "version": "1",
                 "description": "Kits upload their ledger and fetch documents; organisers read the reconciliation."},
        "components": {"securitySchemes": {"kitToken": {"type": "http", "scheme": "bearer"},
                                           "adminToken": {"type": "http", "scheme": "basic"}}},
        "paths": {
            "/api/v1/health": {"get": {"summary": "HQ and its database answer", "responses": {
                "200": _json("ok", {"type": "object", "required": ["status"],
                                    "properties": {"status": {"type": "string"}, "time": {"type": "string"}}}),
                "503": _json("database unreachable", {"type": "object"})}}},
            "/api/v1/kits/{kit}/hwm": {"get": {
                "summary": "The highest seq HQ has answered for, and the seq ranges below it that HQ lacks",
                "parameters": [KIT_PARAM], "security": bearer,
                "responses": {"200": _json("mark and holes", HWM), **kit_errors}}},
            "/api/v1/kits/{kit}/events": {"post": {
                "summary": "Upload a batch of ledger events (JSON lines, Content-Encoding: gzip); answered record by record",
                "parameters": [KIT_PARAM], "security": bearer,
                "requestBody": {"required": True, "content": {"application/x-ndjson": {
                    "schema": {"type": "string"}, "example": EXAMPLE_LINE}}},
                "responses": {"200": _json("every record stored or already there", UPLOAD),
                              "422": _json("some records refused, the others stored", UPLOAD),
                              **_errors("400", "413"), **kit_errors}}},
            "/api/v1/kits/{kit}/relay/events": {"post": {
                "summary": "A site's hub (relay token) uploads a batch of another kit of its site (sync/hq/relay.py)",
                "parameters": [KIT_PARAM, ORIGIN_PARAM], "security": bearer,
                "requestBody": {"required": True, "content": {"application/x-ndjson": {
                    "schema": {"type": "string"}, "example": EXAMPLE_LINE}}},
                "responses": {"200": _json("the origin kit's mark and holes after the batch", {
                    "type": "object", "required": ["kit", "via", "hwm", "missing", "stored", "duplicate", "refused"],
                    "properties": {"kit": {"type": "string"}, "via": {"type": "string"}, "hwm": {"type": "integer"},
                                   "missing": {"type": "array", "items": RANGE}, "stored": {"type": "integer"},
                                   "duplicate": {"type": "integer"}, "refused": {"type": "integer"},
                                   "refusals": {"type": "array", "items": RESULT}}}),
                              **_errors("400", "413"), **kit_errors}}},
            "/api/v1/kits/{kit}/personal": {"post": {
                "summary": "Upload personal records (an e-mail given with consent; never in the ledger); answered one by one",
                "parameters": [KIT_PARAM], "security": bearer,
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["records"], "properties": {"records": {
                        "type": "array", "maxItems": 500, "items": {
                            "type": "object", "required": ["id", "kind", "body"],
                            "properties": {"id": {"type": "string", "maxLength": 64}, "kind": {"type": "string", "maxLength": 65},
                                           "body": {"type": "object"}}}}}}}}},
                "responses": {"200": _json("every record stored or already there", {"type": "object"}),
                              "422": _json("some records refused, the others stored", {"type": "object"}),
                              **_errors("400", "413"), **kit_errors}}},
            "/api/v1/kits/{kit}/documents": {"get": {
                "summary": "Per kind, the document this kit should have", "parameters": [KIT_PARAM], "security": bearer,
                "responses": {"200": _json("manifest", MANIFEST), **kit_errors}}},
            "/api/v1/kits/{kit}/documents/{id}": {"get": {
                "summary": "One document's bytes", "security": bearer,
                "parameters": [KIT_PARAM, {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "the file",
                                      "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                          "format": "binary"}}}},
                              **_errors("404"), **kit_errors}}},
            "/api/v1/kits/{kit}/relay/documents": {"get": {
                "summary": "A site's hub (relay token): the manifest HQ has for another kit of its site (?origin=)",
                "parameters": [KIT_PARAM, ORIGIN_PARAM], "security": bearer,
                "responses": {"200": _json("that kit's manifest", MANIFEST), **kit_errors}}},
            "/api/v1/kits/{kit}/relay/documents/{id}": {"get": {
                "summary": "A site's hub (relay token): one document's bytes for another kit of its site", "security": bearer,
                "parameters": [KIT_PARAM, ORIGIN_PARAM,
                               {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "the file",
                                      "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                          "format": "binary"}}}},
                              **_errors("404"), **kit_errors}}},
            "/api/v1/kits/{kit}/status": {"post": {
                "summary": "The kit's live state for the fleet view (with every sync); answered with the bundle HQ offers it",
                "parameters": [KIT_PARAM], "security": bearer,
                "requestBody": {"required": True, "content": {"application/json": {"schema": STATUS}}},
                "responses": {"200": _json("kept; the offer is null or a bundle", {"type": "object", "properties": {
                    "ok": {"type": "boolean"}, "offer": {"type": "object", "nullable": True}}}),
                    **_errors("400", "413"), **kit_errors}}},
            "/api/v1/kits/{kit}/bundles/{version}/{arch}": {"get": {
                "summary": "A release bundle offered to this kit's site, whole or one byte range (Range: bytes=a-b)",
                "security": bearer,
                "parameters": [KIT_PARAM, *({"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                                            for n in ("version", "arch"))],
                "responses": {"200": {"description": "the whole file"}, "206": {"description": "the range asked for"},
                              "416": {"description": "a range HQ cannot serve (Content-Range: bytes */size)"},
                              **_errors("404"), **kit_errors}}},
            "/api/v1/fleet": {"get": {
                "summary": "Every kit's last status, update outcome and the rollouts", "security": [{"adminToken": []}],
                "responses": {"200": _json("fleet", {"type": "object"}), **_errors("401", "429")}}},
            "/api/v1/report": {"get": {
                "summary": "The reconciliation report as JSON", "security": [{"adminToken": []}],
                "parameters": [{"name": "site", "in": "query", "schema": {"type": "string"}},
                               {"name": "from", "in": "query", "schema": {"type": "string"}},
                               {"name": "to", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": _json("report", {"type": "object"}), **_errors("400", "401", "429")}}},
        },
    }
