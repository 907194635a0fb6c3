"""Transfers as the sending site and the patient see them: create, install keys, authorize,
break-glass, re-issue a code, revoke, status, delivery receipt."""

from __future__ import annotations

import json
import secrets

from aiohttp import web

from relay import audit, errors
from relay.api import bodies, csrf, phone
from relay.api.auth import remote, require_site
from relay.appkeys import CONFIG, METADATA
from relay.config import MAX_EXPIRY
from relay.lifecycle import Authorizer, State, Transfer
from relay.storage.interface import MetadataTransaction
from relay.storage.models import Site, StoredLock
from transfer_codes.codes import LOCATOR_LIMIT
from transfer_codes.tokens import new_transfer_id, token_digest

routes = web.RouteTableDef()

MAX_EXPIRY_SECONDS = int(MAX_EXPIRY)


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


async def status_document(tx: MetadataTransaction, t: Transfer, now: float) -> dict[str, object]:
    objects = await tx.object_statuses(t.id)
    receipt = await tx.receipt(t.id)
    sender = await tx.site(t.sender)
    recipient = await tx.site(t.recipient)
    state = State.EXPIRED if t.is_due(now) else t.state
    return {
        "transfer_id": t.id,
        "state": state.value,
        "sender": {"name": t.sender, "display_name": sender.display_name if sender else ""},
        "recipient": {
            "name": t.recipient,
            "display_name": recipient.display_name if recipient else "",
        },
        "created_at": t.created_at,
        "expires_at": t.expires_at,
        "authorized_at": t.authorized_at,
        "authorized_by": t.authorized_by.value if t.authorized_by else None,
        "break_glass": t.authorized_by == Authorizer.BREAK_GLASS,
        "failed_attempts": t.failed_attempts,
        "redeemed_at": t.redeemed_at,
        "delivered_at": t.delivered_at,
        "revoked_at": t.revoked_at,
        "objects_complete": sum(1 for o in objects if o.complete),
        "manifest_closed": await tx.manifest_closed(t.id),
        "receipt": json.loads(receipt) if receipt else None,
    }


async def _own_transfer(tx: MetadataTransaction, site: Site, transfer_id: str) -> Transfer:
    t = await tx.transfer(transfer_id)
    if t is None or site.name not in (t.sender, t.recipient):
        raise errors.NotFound()
    return t


@routes.get("/api/v1/sites")
async def directory(request: web.Request) -> web.Response:
    await require_site(request)
    async with request.app[METADATA].transaction() as tx:
        sites = await tx.sites("receiving")
    return web.json_response(
        {"sites": [{"name": s.name, "display_name": s.display_name} for s in sites]}
    )


@routes.post("/api/v1/transfers")
async def create(request: web.Request) -> web.Response:
    site = await require_site(request, "sending")
    body = await bodies.json_body(request)
    config = request.app[CONFIG]
    recipient_name = bodies.text(body, "recipient")
    expiry = config.expiry
    if "expires_in" in body:
        expiry = bodies.integer(body, "expires_in", low=60, high=MAX_EXPIRY_SECONDS)
    now = config.clock()
    async with request.app[METADATA].transaction() as tx:
        recipient = await tx.site(recipient_name)
        if recipient is None or recipient.role != "receiving":
            raise errors.UnknownSite()
        free = sorted(set(range(LOCATOR_LIMIT)) - await tx.locators_in_use(recipient.name))
        if not free:
            raise errors.InvalidTransition(
                "This trauma center has too many open transfers; try again later."
            )
        t = Transfer(
            id=new_transfer_id(),
            sender=site.name,
            recipient=recipient.name,
            locator=secrets.choice(free),
            created_at=now,
            expires_at=now + expiry,
        )
        await tx.insert_transfer(t)
        await audit.record(
            tx,
            now,
            event_id=audit.BEGIN_TRANSFERRING,
            action="transfer-created",
            actor=site.name,
            actor_role="sending",
            transfer_id=t.id,
            remote=remote(request),
            recipient=recipient.name,
        )
    return web.json_response(
        {"transfer_id": t.id, "locator": t.locator, "expires_at": t.expires_at}, status=201
    )


@routes.put("/api/v1/transfers/{transfer_id}/locks")
async def install_locks(request: web.Request) -> web.Response:
    """The sender installs the wrapped key twice (code, QR capability) and the digest of the
    patient's authorization token. The relay can verify proofs but unwrap nothing."""
    site = await require_site(request, "sending")
    transfer_id = bodies.transfer_id(request)
    body = await bodies.json_body(request)
    code_lock = _lock(body, "code", salted=True)
    capability_lock = _lock(body, "capability", salted=False)
    authorization = bodies.text(body, "authorization_token", max_len=128)
    now = request.app[CONFIG].clock()
    async with request.app[METADATA].transaction() as tx:
        t = await _own_transfer(tx, site, transfer_id)
        if t.sender != site.name:
            raise errors.NotFound()
        t = t.locks_installed(now)
        await tx.put_lock(t.id, "code", code_lock)
        await tx.put_lock(t.id, "capability", capability_lock)
        await tx.set_authorization_digest(t.id, token_digest(authorization))
        await tx.save_transfer(t)
        await audit.record(
            tx,
            now,
            event_id=audit.APPLICATION_ACTIVITY,
            action="keys-installed",
            actor=site.name,
            actor_role="sending",
            transfer_id=t.id,
            remote=remote(request),
        )
    return web.json_response({"transfer_id": t.id, "state": t.state.value})


@routes.post("/api/v1/transfers/{transfer_id}/reissue")
async def reissue(request: web.Request) -> web.Response:
    """A fresh code (and QR) for the same sealed data: the old ones stop working at once."""
    site = await require_site(request, "sending")
    transfer_id = bodies.transfer_id(request)
    body = await bodies.json_body(request)
    code_lock = _lock(body, "code", salted=True)
    capability_lock = _lock(body, "capability", salted=False)
    now = request.app[CONFIG].clock()
    async with request.app[METADATA].transaction() as tx:
        t = await _own_transfer(tx, site, transfer_id)
        if t.sender != site.name:
            raise errors.NotFound()
        t = t.reissued(now)
        await tx.put_lock(t.id, "code", code_lock)
        await tx.put_lock(t.id, "capability", capability_lock)
        await tx.save_transfer(t)
        await audit.record(
            tx,
            now,
            event_id=audit.SECURITY_ALERT,
            action="code-reissued",
            actor=site.name,
            actor_role="sending",
            transfer_id=t.id,
            remote=remote(request),
        )
    return web.json_response({"transfer_id": t.id, "state": t.state.value, "locator": t.locator})


@routes.post("/api/v1/transfers/{transfer_id}/break-glass")
async def break_glass(request: web.Request) -> web.Response:
    """A clinician authorizes because nobody can consent. The reason and name are sealed by the
    sender (they may describe the patient); the relay records that break-glass was used."""
    site = await require_site(request, "sending")
    transfer_id = bodies.transfer_id(request)
    body = await bodies.json_body(request)
    sealed = bodies.b64(body, "sealed_reason", min_len=29, max_len=8192)
    now = request.app[CONFIG].clock()
    async with request.app[METADATA].transaction() as tx:
        t = await _own_transfer(tx, site, transfer_id)
        if t.sender != site.name:
            raise errors.NotFound()
        if t.authorized_by not in (None, Authorizer.BREAK_GLASS):
            # Saying "break-glass used" while the status says the patient authorized would
            # leave the audit trail and the status disagreeing; a repeat break-glass is fine.
            raise errors.InvalidTransition(
                f"This transfer is already authorized by the {t.authorized_by.value}; "
                "break-glass is not needed."
            )
        t = t.authorized(now, Authorizer.BREAK_GLASS)
        await tx.set_break_glass(t.id, sealed)
        await tx.save_transfer(t)
        await audit.record(
            tx,
            now,
            event_id=audit.SECURITY_ALERT,
            action="break-glass-authorization",
            actor=site.name,
            actor_role="sending",
            transfer_id=t.id,
            remote=remote(request),
        )
    return web.json_response({"transfer_id": t.id, "state": t.state.value, "break_glass": True})


@routes.post("/api/v1/authorizations")
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
    now = request.app[CONFIG].clock()
    async with phone.audited_link(request, "authorize"), request.app[METADATA].transaction() as tx:
        t = await tx.transfer_by_authorization(token_digest(token))
        if t is None:
            raise phone.UnknownLink("That authorization link is not valid (or has expired).")
        first = t.authorized_at is None
        t = t.authorized(now, role)
        await tx.save_transfer(t)
        if first and sealed_authorizer is not None:
            await tx.put_phone_blob(t.id, "authorizer", sealed_authorizer)
        await audit.record(
            tx,
            now,
            event_id=audit.APPLICATION_ACTIVITY,
            action="patient-authorization",
            actor=role.value,
            actor_role=role.value,
            transfer_id=t.id,
            remote=remote(request),
        )
    return web.json_response({"transfer_id": t.id, "state": t.state.value})


@routes.post("/api/v1/transfers/{transfer_id}/revoke")
async def revoke(request: web.Request) -> web.Response:
    site = await require_site(request, "sending")
    transfer_id = bodies.transfer_id(request)
    now = request.app[CONFIG].clock()
    async with request.app[METADATA].transaction() as tx:
        t = await _own_transfer(tx, site, transfer_id)
        if t.sender != site.name:
            raise errors.NotFound()
        t = t.revoked(now)
        await tx.save_transfer(t)
        await tx.delete_locks(t.id)
        await audit.record(
            tx,
            now,
            event_id=audit.SECURITY_ALERT,
            action="transfer-revoked",
            actor=site.name,
            actor_role="sending",
            transfer_id=t.id,
            remote=remote(request),
        )
    return web.json_response({"transfer_id": t.id, "state": t.state.value})


@routes.get("/api/v1/transfers/{transfer_id}")
async def status(request: web.Request) -> web.Response:
    site = await require_site(request)
    transfer_id = bodies.transfer_id(request)
    now = request.app[CONFIG].clock()
    async with request.app[METADATA].transaction() as tx:
        t = await _own_transfer(tx, site, transfer_id)
        if site.name == t.recipient and t.state not in (State.REDEEMED, State.DELIVERED):
            raise errors.NotFound()
        document = await status_document(tx, t, now)
        await audit.record(
            tx,
            now,
            event_id=audit.APPLICATION_ACTIVITY,
            action="status-read",
            actor=site.name,
            actor_role=site.role,
            transfer_id=t.id,
            remote=remote(request),
        )
    return web.json_response(document)


@routes.post("/api/v1/transfers/{transfer_id}/receipt")
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
    if document["destination"] not in ("pacs", "folder", "review"):
        raise errors.BadRequest("'destination' must be 'pacs', 'folder' or 'review'.")
    review = document["destination"] == "review"  # a copy for a person to check: not delivered
    now = request.app[CONFIG].clock()
    async with request.app[METADATA].transaction() as tx:
        t = await _own_transfer(tx, site, transfer_id)
        if t.recipient != site.name:
            raise errors.NotFound()
        t = t.review_copy_kept(now) if review else t.receipt_received(now)
        document["received_at"] = now
        await tx.set_receipt(t.id, json.dumps(document))
        await tx.save_transfer(t)
        await audit.record(
            tx,
            now,
            event_id=audit.IMPORT,
            action="review-copy-receipt" if review else "delivery-receipt",
            actor=site.name,
            actor_role="receiving",
            transfer_id=t.id,
            remote=remote(request),
            instances=document["instances"],
            destination=document["destination"],
        )
    return web.json_response({"transfer_id": t.id, "state": t.state.value})
