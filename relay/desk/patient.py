"""The patient's (or family's) business, through the token of their phone link: authorize, read
the status, revoke. The token itself never reaches the audit trail."""

from __future__ import annotations

from relay import errors
from relay.desk.documents import phone_document
from relay.desk.visit import Desk
from relay.lifecycle import Authorizer, Transfer
from transfer_codes.tokens import token_digest

ALREADY_TAKEN = (
    "The trauma center has already taken the images, so this transfer can no longer be "
    "cancelled. Nothing more is needed from you."
)


class UnknownLink(errors.NotFound):
    """This link does not lead to a transfer: it may be mistyped, or the transfer was deleted
    after it ended. Ask the emergency department."""


async def _linked(d: Desk, token: str, refusal: str | None = None) -> Transfer:
    t = await d.tx.transfer_by_authorization(token_digest(token))
    if t is None:
        raise UnknownLink(refusal)
    return t


def _actor(t: Transfer) -> str:
    return Authorizer.FAMILY.value if t.authorized_by == Authorizer.FAMILY else "patient"


async def link_refused(d: Desk, attempted: str) -> None:
    """Audit a token that led nowhere (110114, failure); `attempted` names the request."""
    await d.record("phone-link-refused", None, outcome="failure", attempted=attempted)


async def authorize(
    d: Desk, token: str, role: Authorizer, sealed_authorizer: bytes | None
) -> Transfer:
    """The patient or family authorizes; the sealed details of who did are kept from the
    first authorization only."""
    t = await _linked(d, token, "That authorization link is not valid (or has expired).")
    first = t.authorized_at is None
    t = t.authorized(d.now, role)
    await d.tx.save_transfer(t)
    if first and sealed_authorizer is not None:
        await d.tx.put_phone_blob(t.id, "authorizer", sealed_authorizer)
    await d.record("patient-authorization", t.id, actor=role.value)
    return t


async def status(d: Desk, token: str) -> dict[str, object]:
    """The phone's document (`documents.phone_document`), audited with the state shown."""
    t = await _linked(d, token)
    document = await phone_document(d.tx, t, d.now)
    await d.record("phone-status-read", t.id, actor=_actor(t), state=document["state"])
    return document


async def revoke(d: Desk, token: str) -> tuple[dict[str, object], errors.RelayError | None]:
    """Withdraw the transfer before the trauma center takes it. Returns the phone's document
    and the refusal, if any, for the caller to raise once this visit has committed: a refused
    revocation is audited too."""
    t = await _linked(d, token)
    refusal: errors.RelayError | None = None
    try:
        revoked = t.revoked(d.now)
    except errors.AlreadyRedeemed:
        refusal = errors.AlreadyRedeemed(ALREADY_TAKEN)
        revoked = t
    except errors.RelayError as e:
        refusal = e
        revoked = t
    else:
        await d.tx.save_transfer(revoked)
        await d.tx.delete_locks(t.id)
    await d.record(
        "phone-revocation",
        t.id,
        actor=_actor(t),
        outcome="failure" if refusal else "success",
        state=t.state.value,
    )
    return await phone_document(d.tx, revoked, d.now), refusal
