"""The patient's phone: the authorization page, its status and revocation, and the sealed
summary and code the sending site leaves for it.

The phone holds the link `{relay}/authorize#<token>.<phone key>`; only the token reaches the
relay (in POST bodies), never the key. Everything the phone reads beyond the states and display
names is sealed under the key (`transfer_codes.phone`); the relay passes it on opaque.
`GET /authorize` only serves the page and changes nothing; every action is a POST that must pass
the CSRF check (`relay.api.csrf`).
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from aiohttp import web

from relay import errors
from relay.api import bodies, csrf, guessing
from relay.api.auth import at_desk, require_site
from relay.desk import patient, sending
from relay.lifecycle import Authorizer, Revoker
from transfer_codes import wire

routes = web.RouteTableDef()

MIN_SEALED = 12 + 16 + 1  # nonce, tag, at least one byte of JSON
MAX_SUMMARY = 16 * 1024
MAX_CODE = 40 * 1024
MAX_AUTHORIZER = 4 * 1024

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
ASSETS = {
    "authorize.css": "text/css",
    "authorize.js": "text/javascript",
    "authorize.text.json": "application/json",
}


def security_headers(response: web.StreamResponse) -> web.StreamResponse:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def _asset(name: str) -> str:
    return (resources.files("relay.pages") / name).read_text(encoding="utf-8")


def authorizer(body: dict[str, Any]) -> tuple[Authorizer, bytes | None]:
    """`authorizer_role` (patient | family, default patient) and the optional sealed details."""
    role_text = body.get("authorizer_role", "patient")
    if role_text not in (Authorizer.PATIENT.value, Authorizer.FAMILY.value):
        raise errors.BadRequest("'authorizer_role' must be 'patient' or 'family'.")
    sealed = None
    if body.get("sealed_authorizer") is not None:
        sealed = bodies.b64(body, "sealed_authorizer", min_len=MIN_SEALED, max_len=MAX_AUTHORIZER)
    return Authorizer(role_text), sealed


def phone_role(body: dict[str, Any]) -> Revoker:
    """`role`: who acts on the phone, the patient or a family member."""
    role_text = body.get("role")
    if role_text not in (Revoker.PATIENT.value, Revoker.FAMILY.value):
        raise errors.BadRequest("'role' must be 'patient' or 'family'.")
    return Revoker(role_text)


@routes.get("/authorize")
async def page(request: web.Request) -> web.Response:
    """The phone's page. It changes nothing: a link previewer may fetch it freely."""
    token = csrf.page_token(request)
    text = _asset("authorize.html").replace("{{csrf_token}}", html.escape(token, quote=True))
    response = web.Response(text=text, content_type="text/html", charset="utf-8")
    csrf.set_cookie(request, response, token)
    security_headers(response)
    return response


@routes.get("/pages/{name}")
async def asset(request: web.Request) -> web.Response:
    """The page's own stylesheet and script (no third-party resources)."""
    name = request.match_info["name"]
    if name not in ASSETS:
        raise errors.NotFound("There is no such page.")
    response = web.Response(text=_asset(name), content_type=ASSETS[name], charset="utf-8")
    security_headers(response)
    return response


@routes.put(wire.transfer_action("{transfer_id}", "phone"))
async def install_phone(request: web.Request) -> web.Response:
    """The sender leaves the sealed summary and/or the sealed code for the patient's phone."""
    site = await require_site(request, "sending")
    transfer_id = bodies.transfer_id(request)
    body = await bodies.json_body(request)
    blobs: dict[str, bytes] = {}
    for kind, limit in (("summary", MAX_SUMMARY), ("code", MAX_CODE)):
        if body.get(kind) is not None:
            blobs[kind] = bodies.b64(body, kind, min_len=MIN_SEALED, max_len=limit)
    if not blobs:
        raise errors.BadRequest("Send 'summary', 'code' or both.")
    async with at_desk(request, site) as d:
        await sending.install_phone_documents(d, transfer_id, blobs)
    return web.json_response({"transfer_id": transfer_id, "installed": sorted(blobs)})


@asynccontextmanager
async def audited_link(request: web.Request, attempted: str) -> AsyncIterator[None]:
    """Around a transaction that looks a phone's token up: if the token leads nowhere, audit
    the refusal (110114, failure) in a transaction of its own, since the refusal rolls the
    other back. `attempted` names the request (status, revoke, authorize); the token itself
    never reaches the record."""
    async with guessing.attempt(request):
        try:
            yield
        except patient.UnknownLink:
            async with at_desk(request) as d:
                await patient.link_refused(d, attempted)
            await guessing.failed(request)
            raise


@routes.post(wire.PHONE_STATUS)
async def phone_status(request: web.Request) -> web.Response:
    """What the phone shows: state in plain words, who sends and receives, and the sealed
    summary (and, once authorized, the sealed code)."""
    csrf.check(request)
    body = await bodies.json_body(request)
    token = bodies.text(body, "token", max_len=128)
    async with audited_link(request, "status"), at_desk(request) as d:
        document = await patient.status(d, token)
    return web.json_response(document)


@routes.post(wire.PHONE_REVOKE)
async def phone_revoke(request: web.Request) -> web.Response:
    """The patient or family withdraws the transfer before the trauma center takes it.

    Optional `role` (patient | family) says who cancels, when nobody authorized from this link
    (after break-glass)."""
    csrf.check(request)
    body = await bodies.json_body(request)
    token = bodies.text(body, "token", max_len=128)
    role = phone_role(body) if body.get("role") is not None else None
    async with audited_link(request, "revoke"), at_desk(request) as d:
        document, refusal = await patient.revoke(d, token, role)
    if refusal is not None:
        raise refusal  # only now: the refusal is in the audit trail
    return web.json_response(document)


@routes.post(wire.PHONE_DECLINE)
async def phone_decline(request: web.Request) -> web.Response:
    """The patient or family (`role`: patient | family) declines before anyone authorized: the
    transfer is revoked by them, its code dies, and the sender sees that they declined."""
    csrf.check(request)
    body = await bodies.json_body(request)
    token = bodies.text(body, "token", max_len=128)
    role = phone_role(body)
    async with audited_link(request, "decline"), at_desk(request) as d:
        document, refusal = await patient.decline(d, token, role)
    if refusal is not None:
        raise refusal  # only now: the refusal is in the audit trail
    return web.json_response(document)
