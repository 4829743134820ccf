"""OpenAPI 3.1 generated from the routers' pydantic models (public routes only)."""
from __future__ import annotations

import html
import json
from typing import Any

from pydantic import BaseModel

from shared.platform import catalog
from shared.platform.router import PUBLIC, ROUTERS, SERVICE, Router

ERROR_SCHEMA = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["type", "code", "message"], "properties": {
        "type": {"type": "string", "enum": ["invalid_request_error", "authentication_error",
                                            "permission_error", "idempotency_error",
                                            "rate_limit_error", "api_error"]},
        "code": {"type": "string"}, "message": {"type": "string"},
        "param": {"type": ["string", "null"]}}}}}


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode="serialization")
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = sub
    name = model.__name__.replace("[", "_").replace("]", "").replace(",", "_")
    components[name] = schema
    return {"$ref": f"#/components/schemas/{name}"}


def _query_params(model: type[BaseModel]) -> list[dict[str, Any]]:
    params = []
    props = model.model_json_schema(by_alias=True).get("properties", {})
    for name, field in model.model_fields.items():
        schema = props.get(field.alias or name) or props.get(name, {})
        params.append({"name": field.alias or name, "in": "query", "required": field.is_required(),
                       "description": field.description or "", "schema": schema})
    return params


def build_openapi(routers: list[Router] | None = None) -> dict[str, Any]:
    components: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths: dict[str, Any] = {}
    seen = set()
    for router in routers if routers is not None else ROUTERS:
        if not router.public_prefix or id(router) in seen:
            continue
        seen.add(id(router))
        for route in router.routes:
            if route.auth == SERVICE:
                continue
            full = route.path if route.path.startswith("/.well-known") else (
                router.public_prefix + ("" if route.path == "/" else route.path))
            op: dict[str, Any] = {
                "operationId": f"{router.name}_{route.handler.__name__}",
                "summary": route.summary, "tags": list(route.tags),
                "responses": {
                    **{str(code): {"description": "Success", **({"content": {"application/json": {
                        "schema": _schema(route.response, components)}}} if route.response else {})}
                       for code in (route.status, *route.other_statuses)},
                    "4XX": {"description": "Error", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Error"}}}}},
            }
            params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                      for n in route.regex.groupindex]
            if route.query:
                params += _query_params(route.query)
            if route.idempotent:
                params.append({"name": "Idempotency-Key", "in": "header", "required": False,
                               "schema": {"type": "string", "maxLength": 255},
                               "description": "Retries with the same key replay the first response for 24 h."})
            if params:
                op["parameters"] = params
            if route.body:
                op["requestBody"] = {"required": True, "content": {"application/json": {
                    "schema": _schema(route.body, components)}}}
            if route.auth != PUBLIC:
                op["security"] = [{"bearer": []}]
            if route.scopes:
                op["x-required-scopes"] = list(route.scopes)
            paths.setdefault(full, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Payloom API", "version": "v1",
                 "description": "Errors use one envelope: {\"error\": {type, code, message, param}}. "
                                "Lists use cursor pagination with limit and starting_after."},
        "servers": [{"url": "/"}],
        "paths": dict(sorted(paths.items())),
        "webhooks": catalog.openapi_webhooks(lambda model: _schema(model, components)),
        "components": {"schemas": components, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "A user access token (JWT) or an API key (sk_test_/sk_live_)."}}},
    }


def docs_html(spec: dict[str, Any] | None = None) -> str:
    """A self-contained reference page (no CDN: works offline)."""
    spec = spec or build_openapi()
    rows = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            ref = body.get("$ref", "").rsplit("/", 1)[-1]
            fields = spec["components"]["schemas"].get(ref, {}).get("properties", {}) if ref else {}
            rows.append(
                f"<section><h3><code>{method.upper()} {html.escape(path)}</code></h3>"
                f"<p>{html.escape(op.get('summary', ''))}</p>"
                + (f"<p>Scopes: {html.escape(', '.join(op.get('x-required-scopes', [])))}</p>" if op.get('x-required-scopes') else "")
                + ("<p>Body: " + ", ".join(f"<code>{html.escape(k)}</code>" for k in fields) + "</p>" if fields else "")
                + "</section>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Payloom API</title>"
            "<style>body{font-family:system-ui;max-width:960px;margin:2em auto;padding:0 1em}"
            "code{background:#f3f3f3;padding:0 .3em}section{border-bottom:1px solid #ddd}</style></head>"
            f"<body><h1>Payloom API v1</h1><p>{html.escape(spec['info']['description'])}</p>"
            "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a></p>"
            + "".join(rows) + "<script type='application/json' id='spec'>"
            + html.escape(json.dumps(spec)) + "</script></body></html>")
