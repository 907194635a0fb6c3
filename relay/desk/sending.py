"""The sending site's business with a transfer: create it, install its keys and the patient's
documents, re-issue the code, authorize by break-glass, revoke."""

from __future__ import annotations

import secrets

from relay import errors
from relay.desk.visit import Desk
from relay.lifecycle import Revoker, Transfer
from relay.storage.models import Site, StoredLock
from transfer_codes.codes import LOCATOR_LIMIT
from transfer_codes.tokens import new_transfer_id, token_digest


async def destinations(d: Desk) -> list[Site]:
    """The trauma centers a transfer can be sent to."""
    return await d.tx.sites("receiving")


async def disabled_destinations(d: Desk) -> list[Site]:
    """The trauma centers the relay's operator has disabled: none can be sent to until the
    operator enables it again (`trauma-relay site enable`)."""
    records = await d.tx.site_records()
    return [
        r.site for r in records if r.site.role == "receiving" and r.site.disabled_at is not None
    ]


# Of one trauma center's locators, what one sending site may hold open at once: no sender can
# use them all up and stop every other hospital sending there.
LOCATORS_PER_SENDER = LOCATOR_LIMIT // 4


async def create(d: Desk, recipient_name: str, expiry: float, max_open: int) -> Transfer:
    """A new transfer from the caller to `recipient_name`, expiring `expiry` seconds from now.
    Raises `UnknownSite`; `TooManyOpenTransfers` when the caller has `max_open` transfers open,
    or a quarter of the recipient's locators; `InvalidTransition` when the recipient has no
    locator free."""
    recipient = await d.tx.site(recipient_name)
    if recipient is None or recipient.role != "receiving" or recipient.disabled_at is not None:
        raise errors.UnknownSite()
    if await d.tx.open_transfer_count(d.caller.name) >= max_open or (
        await d.tx.open_transfer_count(d.caller.name, recipient.name) >= LOCATORS_PER_SENDER
    ):
        raise errors.TooManyOpenTransfers()
    free = sorted(set(range(LOCATOR_LIMIT)) - await d.tx.locators_in_use(recipient.name))
    if not free:
        raise errors.InvalidTransition(
            "This trauma center has too many open transfers; try again later."
        )
    t = Transfer(
        id=new_transfer_id(),
        sender=d.caller.name,
        recipient=recipient.name,
        locator=secrets.choice(free),
        created_at=d.now,
        expires_at=d.now + expiry,
    )
    await d.tx.insert_transfer(t)
    await d.tx.note_sender_address(t.id, d.caller.remote)
    await d.record("transfer-created", t.id, recipient=recipient.name)
    return t


async def _put_locks(d: Desk, t: Transfer, code: StoredLock, capability: StoredLock) -> None:
    await d.tx.put_lock(t.id, "code", code)
    await d.tx.put_lock(t.id, "capability", capability)


async def install_locks(
    d: Desk, transfer_id: str, code: StoredLock, capability: StoredLock, authorization: str
) -> Transfer:
    """The wrapped key twice (code, QR capability) and the digest of the patient's
    authorization token: the relay can verify proofs but unwrap nothing."""
    t = (await d.sent(transfer_id)).locks_installed(d.now)
    await d.tx.note_sender_address(t.id, d.caller.remote)
    await _put_locks(d, t, code, capability)
    await d.tx.set_authorization_digest(t.id, token_digest(authorization))
    return await d.saved(t, "keys-installed")


async def reissue(d: Desk, transfer_id: str, code: StoredLock, capability: StoredLock) -> Transfer:
    """A fresh code (and QR) for the same sealed data: the old ones stop working at once."""
    t = (await d.sent(transfer_id)).reissued(d.now)
    await _put_locks(d, t, code, capability)
    return await d.saved(t, "code-reissued")


async def break_glass(d: Desk, transfer_id: str, sealed_reason: bytes) -> Transfer:
    """A clinician authorizes because nobody can consent; the reason stays sealed."""
    t = (await d.sent(transfer_id)).break_glass_used(d.now)
    await d.tx.set_break_glass(t.id, sealed_reason)
    return await d.saved(t, "break-glass-authorization")


async def revoke(d: Desk, transfer_id: str) -> Transfer:
    """The sender withdraws the transfer; its keys are deleted at once."""
    t = (await d.sent(transfer_id)).revoked(d.now, Revoker.SENDING_SITE)
    await d.tx.delete_locks(t.id)
    return await d.saved(t, "transfer-revoked")


async def install_phone_documents(d: Desk, transfer_id: str, blobs: dict[str, bytes]) -> None:
    """The sealed summary and/or code for the patient's phone (`blobs` by kind)."""
    t = await d.sent(transfer_id)
    t.require_live(d.now)
    await d.tx.note_sender_address(t.id, d.caller.remote)
    for kind, sealed in blobs.items():
        await d.tx.put_phone_blob(t.id, kind, sealed)
    await d.record("phone-documents-installed", t.id, kinds=sorted(blobs))
