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
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from aiohttp import web

from relay import audit, errors
from relay.api import bodies, csrf
from relay.api.auth import remote, require_site
from relay.appkeys import CONFIG, METADATA
from relay.lifecycle import Authorizer, State, Transfer
from relay.storage.interface import MetadataTransaction
from transfer_codes.tokens import token_digest
from transfer_codes.wire import b64encode_text

routes = web.RouteTableDef()

MIN_SEALED = 12 + 16 + 1  # nonce, tag, at least one byte of JSON
MAX_SUMMARY = 16 * 1024
MAX_CODE = 40 * 1024
MAX_AUTHORIZER = 4 * 1024

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
ASSETS = {"authorize.css": "text/css", "authorize.js": "text/javascript"}

# What the phone says about each state, in plain words (shown as is).
EXPLANATIONS = {
    State.CREATED: "The emergency department is still preparing this transfer. "
    "Try again in a minute.",
    State.AWAITING_AUTHORIZATION: "Nothing has been shared yet. Read what would be shared and "
    "with whom, then decide.",
    State.AUTHORIZED: "The transfer is authorized. Give this code to the trauma center: show it, "
    "read it aloud, or let them scan the QR code.",
    State.REDEEMED: "The trauma center has taken the images and is checking them.",
    State.DELIVERED: "The images are stored at the trauma center, ready for the doctors.",
    State.EXPIRED: "This transfer has expired and its images were deleted from the relay. If "
    "the trauma center still needs them, ask the emergency department to send them again.",
    State.REVOKED: "This transfer was cancelled, so nobody can take the images. If that was a "
    "mistake, ask the emergency department to send them again.",
    State.LOCKED: "Too many wrong codes were tried, so this transfer is locked to keep it safe. "
    "The emergency department can give the trauma center a new code; nothing has to be sent "
    "again.",
}


ALREADY_TAKEN = (
    "The trauma center has already taken the images, so this transfer can no longer be "
    "cancelled. Nothing more is needed from you."
)


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


@routes.put("/api/v1/transfers/{transfer_id}/phone")
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
    now = request.app[CONFIG].clock()
    async with request.app[METADATA].transaction() as tx:
        t = await tx.transfer(transfer_id)
        if t is None or t.sender != site.name:
            raise errors.NotFound()
        if t.state == State.REVOKED:
            raise errors.TransferRevoked()
        if t.state == State.EXPIRED or t.is_due(now):
            raise errors.TransferExpired()
        for kind, sealed in blobs.items():
            await tx.put_phone_blob(t.id, kind, sealed)
        await audit.record(
            tx,
            now,
            event_id=audit.APPLICATION_ACTIVITY,
            action="phone-documents-installed",
            actor=site.name,
            actor_role="sending",
            transfer_id=t.id,
            remote=remote(request),
            kinds=sorted(blobs),
        )
    return web.json_response({"transfer_id": t.id, "installed": sorted(blobs)})


class UnknownLink(errors.NotFound):
    """This link does not lead to a transfer: it may be mistyped, or the transfer was deleted
    after it ended. Ask the emergency department."""


async def _by_token(tx: MetadataTransaction, token: str) -> Transfer:
    t = await tx.transfer_by_authorization(token_digest(token))
    if t is None:
        raise UnknownLink()
    return t


@asynccontextmanager
async def audited_link(request: web.Request, attempted: str) -> AsyncIterator[None]:
    """Around a transaction that looks a phone's token up: if the token leads nowhere, audit
    the refusal (110114, failure) in a transaction of its own, since the refusal rolls the
    other back. `attempted` names the request (status, revoke, authorize); the token itself
    never reaches the record."""
    try:
        yield
    except UnknownLink:
        async with request.app[METADATA].transaction() as tx:
            await audit.record(
                tx,
                request.app[CONFIG].clock(),
                event_id=audit.USER_AUTHENTICATION,
                action="phone-link-refused",
                actor="unknown",
                actor_role="unknown",
                transfer_id=None,
                outcome="failure",
                remote=remote(request),
                attempted=attempted,
            )
        raise


def _phone_actor(t: Transfer) -> str:
    return Authorizer.FAMILY.value if t.authorized_by == Authorizer.FAMILY else "patient"


async def _document(tx: MetadataTransaction, t: Transfer, now: float) -> dict[str, object]:
    state = State.EXPIRED if t.is_due(now) else t.state
    sender = await tx.site(t.sender)
    recipient = await tx.site(t.recipient)
    recipient_name = recipient.display_name if recipient else t.recipient
    receipt = await tx.receipt(t.id)
    summary = await tx.phone_blob(t.id, "summary")
    code = await tx.phone_blob(t.id, "code") if state == State.AUTHORIZED else None
    sealed_authorizer = await tx.phone_blob(t.id, "authorizer")
    delivered: dict[str, object] | None = None
    if receipt is not None and state == State.DELIVERED:
        counts = json.loads(receipt)
        delivered = {
            "instances": counts.get("instances"),
            "destination": counts.get("destination"),
            "complete": counts.get("complete"),
        }
    return {
        "state": state.value,
        "explanation": EXPLANATIONS[state],
        "sender": {"display_name": sender.display_name if sender else t.sender},
        "recipient": {"display_name": recipient_name},
        "expires_at": t.expires_at,
        "authorized_at": t.authorized_at,
        "authorized_by": t.authorized_by.value if t.authorized_by else None,
        "break_glass": t.authorized_by == Authorizer.BREAK_GLASS,
        "redeemed_at": t.redeemed_at,
        "redeemed_by": recipient_name if t.redeemed_at is not None else None,
        "delivered_at": t.delivered_at,
        "delivered": delivered,
        "revoked_at": t.revoked_at,
        "can_revoke": state
        in (State.CREATED, State.AWAITING_AUTHORIZATION, State.AUTHORIZED, State.LOCKED),
        "summary": b64encode_text(summary) if summary else None,
        "code": b64encode_text(code) if code else None,
        "authorizer": b64encode_text(sealed_authorizer) if sealed_authorizer else None,
    }


@routes.post("/api/v1/phone/status")
async def phone_status(request: web.Request) -> web.Response:
    """What the phone shows: state in plain words, who sends and receives, and the sealed
    summary (and, once authorized, the sealed code)."""
    csrf.check(request)
    body = await bodies.json_body(request)
    token = bodies.text(body, "token", max_len=128)
    now = request.app[CONFIG].clock()
    async with audited_link(request, "status"), request.app[METADATA].transaction() as tx:
        t = await _by_token(tx, token)
        document = await _document(tx, t, now)
        await audit.record(
            tx,
            now,
            event_id=audit.APPLICATION_ACTIVITY,
            action="phone-status-read",
            actor=_phone_actor(t),
            actor_role=_phone_actor(t),
            transfer_id=t.id,
            remote=remote(request),
            state=document["state"],
        )
    return web.json_response(document)


@routes.post("/api/v1/phone/revoke")
async def phone_revoke(request: web.Request) -> web.Response:
    """The patient or family withdraws the transfer before the trauma center takes it."""
    csrf.check(request)
    body = await bodies.json_body(request)
    token = bodies.text(body, "token", max_len=128)
    now = request.app[CONFIG].clock()
    refusal: errors.RelayError | None = None
    async with audited_link(request, "revoke"), request.app[METADATA].transaction() as tx:
        t = await _by_token(tx, token)
        try:
            revoked = t.revoked(now)
        except errors.AlreadyRedeemed:
            refusal = errors.AlreadyRedeemed(ALREADY_TAKEN)
            revoked = t
        except errors.RelayError as e:
            refusal = e  # raised after the refusal is in the audit trail
            revoked = t
        else:
            await tx.save_transfer(revoked)
            await tx.keep_cancelled_locks(t.id)  # so the right code is told who cancelled
            await tx.delete_locks(t.id)
        await audit.record(
            tx,
            now,
            event_id=audit.SECURITY_ALERT,
            action="phone-revocation",
            actor=_phone_actor(t),
            actor_role=_phone_actor(t),
            transfer_id=t.id,
            outcome="failure" if refusal else "success",
            remote=remote(request),
            state=t.state.value,
        )
        document = await _document(tx, revoked, now)
    if refusal is not None:
        raise refusal
    return web.json_response(document)
