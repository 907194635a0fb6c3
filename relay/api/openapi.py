"""The API's OpenAPI 3 document, built from the routes themselves so it cannot drift."""

from __future__ import annotations

import inspect
import re
from typing import cast

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
        "destination": {
            "type": "string",
            "enum": list(wire.RECEIPT_DESTINATIONS),
            "description": "`review`: a held study saved for a person to check (the transfer "
            "stays redeemed); `discarded`: the trauma center discarded it after review "
            "(`instances`: how many images its PACS had already stored).",
        },
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


def _object(properties: dict[str, object], *required: str) -> dict[str, object]:
    schema: dict[str, object] = {"type": "object", "properties": properties}
    if required:  # OpenAPI 3.0: a `required` list is never empty
        schema["required"] = list(required)
    return schema


_TEXT = {"type": "string"}
_BASE64 = {"type": "string", "format": "byte"}
_INTEGER = {"type": "integer", "minimum": 0}
_LOCK = _object(
    {"salt": _BASE64, "verifier": _BASE64, "wrapped_key": _BASE64}, "verifier", "wrapped_key"
)
_ROLE = {"type": "string", "enum": ["patient", "family"]}
_TOKEN = {"type": "string", "description": "The phone link's authorization token."}
_PHONE_ACTION = _object({"token": _TOKEN, "role": _ROLE}, "token")

OBJECT = wire.transfer_action("{transfer_id}", "objects") + "/{index}"
MANIFEST_RECORD = wire.transfer_action("{transfer_id}", "manifest") + "/{seq}"


def _action(name: str) -> str:
    return wire.transfer_action("{transfer_id}", name)


# JSON request bodies, so a client (and a fuzzer) knows their shape; the handlers check them
# strictly (relay.api.bodies) whatever the document says.
BODIES: dict[tuple[str, str], dict[str, object]] = {
    ("POST", _action("receipt")): RECEIPT_BODY,
    ("POST", wire.TRANSFERS): _object(
        {"recipient": _TEXT, "expires_in": {"type": "integer", "minimum": 60}}, "recipient"
    ),
    ("PUT", _action("locks")): _object(
        {"code": _LOCK, "capability": _LOCK, "authorization_token": _TOKEN},
        "code",
        "capability",
        "authorization_token",
    ),
    ("POST", _action("reissue")): _object(
        {"code": _LOCK, "capability": _LOCK}, "code", "capability"
    ),
    ("POST", _action("break-glass")): _object({"sealed_reason": _BASE64}, "sealed_reason"),
    ("PUT", _action("phone")): _object({"summary": _BASE64, "code": _BASE64}),
    ("POST", wire.AUTHORIZATIONS): _object(
        {"token": _TOKEN, "authorizer_role": _ROLE, "sealed_authorizer": _BASE64}, "token"
    ),
    ("POST", wire.PHONE_STATUS): _object({"token": _TOKEN}, "token"),
    ("POST", wire.PHONE_REVOKE): _PHONE_ACTION,
    ("POST", wire.PHONE_DECLINE): _PHONE_ACTION,
    ("POST", wire.REDEMPTION_SALT): _object({"locator": _INTEGER}, "locator"),
    ("POST", wire.REDEMPTIONS): _object(
        {
            "proof": _BASE64,
            "locator": _INTEGER,
            "transfer_id": _TEXT,
            "redemption_id": _BASE64,
        },
        "proof",
    ),
    ("POST", OBJECT + "/complete"): _object({"size": _INTEGER, "sha256": _TEXT}, "size", "sha256"),
}
# Bodies of raw bytes: a piece of a sealed object, a sealed manifest record.
BYTES_BODIES = {("PATCH", OBJECT), ("PUT", MANIFEST_RECORD)}


def _header(name: str, *, required: bool = False) -> dict[str, object]:
    return {"name": name, "in": "header", "required": required, "schema": {"type": "string"}}


def _query(name: str) -> dict[str, object]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}


PARAMETERS: dict[tuple[str, str], list[dict[str, object]]] = {
    ("PATCH", OBJECT): [
        _header(wire.UPLOAD_OFFSET, required=True),
        _header(wire.UPLOAD_LENGTH),
        _header(wire.UPLOAD_SHA256),
    ],
    ("PUT", MANIFEST_RECORD): [_header(wire.MANIFEST_FINAL)],
    ("GET", OBJECT): [_header("Range")],
    ("GET", _action("manifest")): [_query("from"), _query("wait")],
}

PROBLEM: dict[str, object] = {
    "type": "object",
    "description": "A problem document (RFC 9457).",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
    },
}


def _json(description: str) -> dict[str, object]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }


def _bytes(description: str) -> dict[str, object]:
    return {
        "description": description,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }


# Answers other than a plain 200 with a JSON object (errors are problem documents).
SUCCESSES: dict[tuple[str, str], dict[str, object]] = {
    ("POST", wire.TRANSFERS): {"201": _json("Created.")},
    ("PUT", MANIFEST_RECORD): {
        "200": _json("Already stored, the same bytes."),
        "201": _json("Stored."),
    },
    ("GET", OBJECT): {
        "200": _bytes("The whole sealed object."),
        "206": _bytes("The sealed object from the requested offset."),
    },
    ("GET", wire.HEALTH): {
        "200": _json("Healthy."),
        "503": _json("Not taking uploads (`disk-full`)."),
    },
}


def _problem(description: str) -> dict[str, object]:
    return {
        "description": f"{description} (a problem document, RFC 9457).",
        "content": {"application/problem+json": {"schema": PROBLEM}},
    }


def _stored(description: str) -> dict[str, object]:
    return {
        "description": description,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["from", "count", "stored", "final"],
                    "properties": {
                        "from": {"type": "integer", "minimum": 0},
                        "count": {"type": "integer", "minimum": 1},
                        "stored": {"type": "integer", "minimum": 0},
                        "final": {"type": "boolean"},
                    },
                }
            }
        },
    }


# Operations documented in more detail than the generic entry: merged over it.
MANIFEST_BATCH: dict[str, object] = {
    "parameters": [
        {
            "name": wire.MANIFEST_FROM,
            "in": "header",
            "required": True,
            "description": "The number of the batch's first record.",
            "schema": {"type": "string", "pattern": "^[0-9]{1,9}$"},
        },
        {
            "name": wire.MANIFEST_FINAL,
            "in": "header",
            "required": False,
            "description": "`1`: the batch's last record closes the manifest.",
            "schema": {"type": "string", "enum": ["0", "1"]},
        },
    ],
    "requestBody": {
        "required": True,
        "description": f"1 to {wire.BATCH_RECORDS} sealed manifest records, each after its "
        f"length ({wire.LENGTH_PREFIX} bytes, big-endian); at most {wire.BATCH_BYTES} bytes.",
        "content": {
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary", "maxLength": wire.BATCH_BYTES}
            }
        },
    },
    "responses": {
        "201": _stored("Stored and committed; `stored` of the `count` records were new."),
        "200": _stored("Every record of the batch was stored before, identical (a repeat)."),
        "400": _problem(
            "Malformed: a bad `Manifest-From`, a body that is not length-prefixed records, a "
            "record empty or larger than the relay's limit, or a batch starting past the next "
            "record the relay lacks; nothing was stored"
        ),
        "401": _problem("No or unknown site credential"),
        "403": _problem("Not a sending site, or the site is disabled"),
        "404": _problem("No such transfer of this sending site"),
        "409": _problem(
            "A record differs from the one stored at its number, or the manifest is already "
            "closed, or the transfer takes no more uploads (delivered, expired, revoked); nothing "
            "was stored"
        ),
        "413": _problem(f"More than {wire.BATCH_RECORDS} records or {wire.BATCH_BYTES} bytes"),
        "default": _problem("Another refusal"),
    },
}
OPERATIONS = {("POST", wire.manifest_batch("{transfer_id}")): MANIFEST_BATCH}


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
            ]
            + PARAMETERS.get((route.method, path), []),
            "responses": {
                **SUCCESSES.get((route.method, path), {"200": _json("Success.")}),
                "default": {
                    "description": "A problem document (RFC 9457).",
                    "content": {"application/problem+json": {"schema": PROBLEM}},
                },
            },
        }
        body = BODIES.get((route.method, path))
        if body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": body}},
            }
        elif (route.method, path) in BYTES_BODIES:
            operation["requestBody"] = {
                "required": True,
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                },
            }
        extra = OPERATIONS.get((route.method, path))
        if extra is not None:
            operation = {
                **operation,
                **extra,
                "parameters": [
                    *cast(list[object], operation["parameters"]),
                    *cast(list[object], extra["parameters"]),
                ],
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
