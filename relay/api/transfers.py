"""Transfers as the sending site and the patient see them: create, install keys, authorize,
break-glass, re-issue a code, revoke, status, delivery receipt. The business is in
`relay.desk`; here requests are parsed and answered."""

from __future__ import annotations

from aiohttp import web

from relay import disk, errors
from relay.api import bodies, csrf, phone
from relay.api.auth import at_desk, require_site
from relay.appkeys import CONFIG
from relay.config import MAX_EXPIRY
from relay.desk import documents, patient, receiving, sending
from relay.lifecycle import Transfer
from relay.storage.models import StoredLock
from transfer_codes import wire

routes = web.RouteTableDef()

MAX_EXPIRY_SECONDS = int(MAX_EXPIRY)
TRANSFER = wire.transfer("{transfer_id}")


def _lock(body: dict[str, object], name: str, *, salted: bool) -> StoredLock:
    part = body.get(name)
    if not isinstance(part, dict):
        raise errors.BadRequest(f"{name!r} must be an object with salt, verifier, wrapped_key.")
    salt = bodies.b64(part, "salt", min_len=16, max_len=64) if salted else b""
    return StoredLock(
        salt=salt,
        verifier=bodies.b64(part, "verifier", min_len=32, max_len=32),
        wrapped_key=bodies.b64(part, "wrapped_key", min_len=32, max_len=256),
    )


def _state(t: Transfer, **extra: object) -> web.Response:
    return web.json_response({"transfer_id": t.id, "state": t.state.value, **extra})


@routes.get(wire.SITES)
async def directory(request: web.Request) -> web.Response:
    """The trauma centers a transfer can be sent to (`sites`), and those the relay's operator
    has disabled (`disabled`), so that a sending site can say why one it knows is not offered."""
    site = await require_site(request)
    async with at_desk(request, site) as d:
        sites = await sending.destinations(d)
        disabled = await sending.disabled_destinations(d)
    return web.json_response(
        {
            "sites": [{"name": s.name, "display_name": s.display_name} for s in sites],
            "disabled": [{"name": s.name, "display_name": s.display_name} for s in disabled],
        }
    )


@routes.post(wire.TRANSFERS)
async def create(request: web.Request) -> web.Response:
    site = await require_site(request, "sending")
    body = await bodies.json_body(request)
    recipient = bodies.text(body, "recipient")
    expiry = request.app[CONFIG].expiry
    if "expires_in" in body:
        expiry = bodies.integer(body, "expires_in", low=60, high=MAX_EXPIRY_SECONDS)
    config = request.app[CONFIG]
    await disk.require_room(config.data_dir, config.disk_reserve_bytes)
    async with at_desk(request, site) as d:
        t = await sending.create(d, recipient, expiry, config.max_open_transfers_per_site)
    return web.json_response(
        {"transfer_id": t.id, "locator": t.locator, "expires_at": t.expires_at}, status=201
    )


@routes.put(wire.transfer_action("{transfer_id}", "locks"))
async def install_locks(request: web.Request) -> web.Response:
    """The sender installs the wrapped key twice (code, QR capability) and the digest of the
    patient's authorization token. The relay can verify proofs but unwrap nothing."""
    site = await require_site(request, "sending")
    transfer_id = bodies.transfer_id(request)
    body = await bodies.json_body(request)
    code_lock = _lock(body, "code", salted=True)
    capability_lock = _lock(body, "capability", salted=False)
    authorization = bodies.text(body, "authorization_token", max_len=128)
    async with at_desk(request, site) as d:
        t = await sending.install_locks(d, transfer_id, code_lock, capability_lock, authorization)
    return _state(t)


@routes.post(wire.transfer_action("{transfer_id}", "reissue"))
async def reissue(request: web.Request) -> web.Response:
    """A fresh code (and QR) for the same sealed data: the old ones stop working at once."""
    site = await require_site(request, "sending")
    transfer_id = bodies.transfer_id(request)
    body = await bodies.json_body(request)
    code_lock = _lock(body, "code", salted=True)
    capability_lock = _lock(body, "capability", salted=False)
    async with at_desk(request, site) as d:
        t = await sending.reissue(d, transfer_id, code_lock, capability_lock)
    return _state(t, locator=t.locator)


@routes.post(wire.transfer_action("{transfer_id}", "break-glass"))
async def break_glass(request: web.Request) -> web.Response:
    """A clinician authorizes because nobody can consent. The reason and name are sealed by the
    sender (they may describe the patient); the relay records that break-glass was used."""
    site = await require_site(request, "sending")
    transfer_id = bodies.transfer_id(request)
    body = await bodies.json_body(request)
    sealed = bodies.b64(body, "sealed_reason", min_len=29, max_len=8192)
    async with at_desk(request, site) as d:
        t = await sending.break_glass(d, transfer_id, sealed)
    return _state(t, break_glass=True)


@routes.post(wire.AUTHORIZATIONS)
async def authorize(request: web.Request) -> web.Response:
    """The patient or family authorizes with the token from their link (POST only: a link
    previewer fetching the page changes nothing).

    Optional `authorizer_role` (patient | family) is what the relay may show; optional
    `sealed_authorizer` (who, relationship, when) is sealed by the phone and stored opaque. A
    browser must pass the CSRF check (`relay.api.csrf`)."""
    if csrf.came_from_browser(request):
        csrf.check(request)
    body = await bodies.json_body(request)
    token = bodies.text(body, "token", max_len=128)
    role, sealed_authorizer = phone.authorizer(body)
    async with phone.audited_link(request, "authorize"), at_desk(request) as d:
        t, refusal = await patient.authorize(d, token, role, sealed_authorizer)
    if refusal is not None:
        raise refusal  # only now: the refusal is in the audit trail
    return _state(t)


@routes.post(wire.transfer_action("{transfer_id}", "revoke"))
async def revoke(request: web.Request) -> web.Response:
    site = await require_site(request, "sending")
    transfer_id = bodies.transfer_id(request)
    async with at_desk(request, site) as d:
        t = await sending.revoke(d, transfer_id)
    return _state(t)


@routes.get(TRANSFER)
async def status(request: web.Request) -> web.Response:
    site = await require_site(request)
    transfer_id = bodies.transfer_id(request)
    async with at_desk(request, site) as d:
        document = await documents.status(d, transfer_id)
    return web.json_response(document)


@routes.post(wire.transfer_action("{transfer_id}", "receipt"))
async def receipt(request: web.Request) -> web.Response:
    """The receiving site reports what it stored (counts only: the relay keeps no PHI)."""
    site = await require_site(request, "receiving")
    transfer_id = bodies.transfer_id(request)
    body = await bodies.json_body(request)
    document = {
        "instances": bodies.integer(body, "instances"),
        "bytes": bodies.integer(body, "bytes"),
        "destination": bodies.text(body, "destination", max_len=20),
        "complete": body.get("complete", False),
    }
    if not isinstance(document["complete"], bool):  # bool("no") is True
        raise errors.BadRequest("'complete' must be true or false.")
    if document["destination"] not in wire.RECEIPT_DESTINATIONS:
        raise errors.BadRequest(
            "'destination' must be one of " + ", ".join(map(repr, wire.RECEIPT_DESTINATIONS)) + "."
        )
    document.update(bodies.receipt_details(body, document["instances"]))
    async with at_desk(request, site) as d:
        t = await receiving.receipt(d, transfer_id, document)
    return _state(t)
