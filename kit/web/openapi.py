"""The OpenAPI document of every ``/api/v1/`` route, built from the app's own URL map.

Routes add detail with ``@api_doc(summary=..., request={schema}, responses={code: description})``;
a route without it is still listed (from its docstring), so the document never misses one.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from flask import Blueprint, current_app, jsonify

import kit

bp = Blueprint("openapi", __name__)
SESSION_COOKIE = "fieldkit_session"  # the app's SESSION_COOKIE_NAME (kit/web/app.py uses this constant)


def api_doc(summary: str = "", request: dict | None = None, responses: dict | None = None,
            query: dict | None = None) -> Callable:
    def decorate(view: Callable) -> Callable:
        view.api_doc = {"summary": summary, "request": request, "responses": responses or {}, "query": query or {}}
        return view

    return decorate


def build_spec(app) -> dict:
    paths: dict[str, dict] = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        view = app.view_functions[rule.endpoint]
        doc = getattr(view, "api_doc", {}) or {}
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                  for n in re.findall(r"{([^}]+)}", path)]
        params += [{"name": n, "in": "query", "required": False, "schema": s} for n, s in doc.get("query", {}).items()]
        role = getattr(view, "required_role", None)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            op: dict = {
                "operationId": f"{rule.endpoint}_{method.lower()}",
                "summary": doc.get("summary") or (view.__doc__ or rule.endpoint).strip().splitlines()[0],
                "parameters": params,
                "responses": {str(k): {"description": v} for k, v in (doc.get("responses") or {"200": "OK"}).items()},
            }
            if role:
                op["description"] = f"Needs a signed-in session with the {role} role (or lead)."
                op["security"] = [{"session": []}]
                op["responses"].setdefault("401", {"description": "not signed in"})
            if doc.get("request") and method in ("POST", "PUT", "PATCH"):
                op["requestBody"] = {"required": True, "content": {"application/json": {"schema": doc["request"]}}}
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "Field Kit", "version": kit.__version__,
                 "description": "The kit's local API. State-changing calls need the session's X-CSRF-Token header."},
        "components": {"securitySchemes": {"session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE}}},
        "paths": dict(sorted(paths.items())),
    }


@bp.route("/api/v1/openapi.json")
@api_doc("This document: every API route of the kit")
def openapi():
    return jsonify(build_spec(current_app))
