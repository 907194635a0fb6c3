"""The API's OpenAPI 3 document, built from the routes themselves so it cannot drift."""

from __future__ import annotations

import inspect
import re

from aiohttp import web

from transfer_codes import wire

routes = web.RouteTableDef()

OPENAPI = "/api/openapi.json"
PUBLIC = {
    ("POST", wire.AUTHORIZATIONS),
    ("POST", wire.PHONE_STATUS),
    ("POST", wire.PHONE_REVOKE),
    ("POST", wire.PHONE_DECLINE),
    ("GET", OPENAPI),
}

# Request bodies documented by schema (the others are described in their handler's summary).
RECEIPT_BODY: dict[str, object] = {
    "type": "object",
    "description": "What the trauma center stored: counts and flags only, never PHI.",
    "required": ["instances", "bytes", "destination"],
    "properties": {
        "instances": {"type": "integer", "minimum": 0},
        "bytes": {"type": "integer", "minimum": 0},
        "destination": {"type": "string", "enum": ["pacs", "folder", "review"]},
        "complete": {"type": "boolean", "default": False},
        "decompressed": {
            "type": "integer",
            "minimum": 0,
            "description": "How many of the instances were decompressed for the PACS "
            "(at most `instances`).",
        },
        "reconciled": {
            "type": "boolean",
            "description": "Whether the study was filed under the trauma center's own "
            "patient record (import reconciliation).",
        },
    },
}
BODIES = {("POST", wire.transfer_action("{transfer_id}", "receipt")): RECEIPT_BODY}


def _summary(handler: object) -> str:
    doc = inspect.getdoc(handler) or ""
    return doc.split("\n\n", 1)[0].replace("\n", " ") or getattr(handler, "__name__", "")


def document(app: web.Application) -> dict[str, object]:
    paths: dict[str, dict[str, object]] = {}
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("formatter") or info.get("path")
        if not isinstance(path, str) or route.method == "HEAD":
            continue
        if not (path.startswith("/api/") or path == wire.HEALTH):
            continue
        params = re.findall(r"{(\w+)}", path)
        operation: dict[str, object] = {
            "operationId": getattr(route.handler, "__name__", "handler"),
            "summary": _summary(route.handler),
            "parameters": [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                for p in params
            ],
            "responses": {
                "200": {"description": "Success (JSON unless stated otherwise)."},
                "default": {
                    "description": "A problem document (RFC 9457).",
                    "content": {"application/problem+json": {"schema": {"type": "object"}}},
                },
            },
        }
        body = BODIES.get((route.method, path))
        if body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": body}},
            }
        if (route.method, path) in PUBLIC or path == wire.HEALTH:
            operation["security"] = []
        paths.setdefault(path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "trauma-relay relay API",
            "version": "1",
            "description": "The relay stores only ciphertext; it never holds a key or PHI.",
        },
        "components": {"securitySchemes": {"siteCredential": {"type": "http", "scheme": "bearer"}}},
        "security": [{"siteCredential": []}],
        "paths": paths,
    }


@routes.get(OPENAPI)
async def openapi_json(request: web.Request) -> web.Response:
    """This document."""
    return web.json_response(document(request.app))
