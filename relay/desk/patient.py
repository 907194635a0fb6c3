"""The patient's (or family's) business, through the token of their phone link: authorize, read
the status, decline, revoke. The token itself never reaches the audit trail."""

from __future__ import annotations

from relay import errors
from relay.addresses import is_loopback
from relay.desk.documents import phone_document
from relay.desk.visit import Desk
from relay.lifecycle import Authorizer, Revoker, Transfer
from transfer_codes.tokens import token_digest

ALREADY_TAKEN = (
    "The trauma center has already taken the images, so this transfer can no longer be "
    "cancelled. Nothing more is needed from you."
)


class UnknownLink(errors.NotFound):
    """This link does not lead to a transfer: it may be mistyped, or the transfer was deleted
    after it ended. Ask the emergency department."""


async def _linked(d: Desk, token: str, refusal: str | None = None) -> Transfer:
    # Looked up by its digest, never compared as a secret: as good as constant time.
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
) -> tuple[Transfer, errors.RelayError | None]:
    """The patient or family authorizes; the sealed details of who did are kept from the
    first authorization only. Returns the transfer and the refusal, if any (the transfer is
    over: expired, revoked, redeemed or delivered), for the caller to raise once this visit has
    committed: a refused authorization is audited too, and changes nothing else."""
    t = await _linked(d, token, "That authorization link is not valid (or has expired).")
    first = t.authorized_at is None
    try:
        t = t.authorized(d.now, role)
    except errors.RelayError as refusal:
        await d.record(
            "patient-authorization",
            t.id,
            outcome="failure",
            actor=role.value,
            state=t.state_at(d.now).value,  # "expired" also before the sweeper recorded it
        )
        return t, refusal  # unchanged: its state is what refused
    await d.tx.save_transfer(t)
    if first and sealed_authorizer is not None:
        await d.tx.put_phone_blob(t.id, "authorizer", sealed_authorizer)
    from_sender = first and await _from_sending_site(d, t)
    await d.record("patient-authorization", t.id, actor=role.value, from_sender=from_sender)
    if from_sender:
        await d.tx.flag_consent_from_sender(t.id)
        await d.record("consent-from-sending-site", t.id, outcome="failure", actor=role.value)
    return t, None


async def _from_sending_site(d: Desk, t: Transfer) -> bool:
    """Did this authorization come from an address the sending site used for the transfer?
    (It holds the link, so it could record the patient's consent itself.) A loopback address
    tells nothing: a proxy on the relay's own machine, or a test."""
    return not is_loopback(d.caller.remote) and d.caller.remote in await d.tx.sender_addresses(t.id)


async def status(d: Desk, token: str) -> dict[str, object]:
    """The phone's document (`documents.phone_document`), audited with the state shown."""
    t = await _linked(d, token)
    document = await phone_document(d.tx, t, d.now)
    await d.record("phone-status-read", t.id, actor=_actor(t), state=document["state"])
    return document


def _canceller(t: Transfer, role: Revoker | None) -> Revoker:
    """Who cancels from the phone: the role that authorized from it (patient or family), else
    the role the phone gives (after break-glass), else the patient, as the link's holder."""
    if t.authorized_by == Authorizer.FAMILY:
        return Revoker.FAMILY
    if t.authorized_by == Authorizer.PATIENT:
        return Revoker.PATIENT
    return role or Revoker.PATIENT


async def _withdraw(
    d: Desk, token: str, by: Revoker | None, *, declining: bool
) -> tuple[dict[str, object], errors.RelayError | None]:
    t = await _linked(d, token)
    who = by if declining and by is not None else _canceller(t, by)
    refusal: errors.RelayError | None = None
    try:
        after = t.declined(d.now, who) if declining else t.revoked(d.now, who)
    except errors.AlreadyRedeemed:
        refusal = errors.AlreadyRedeemed(ALREADY_TAKEN)
        after = t
    except errors.RelayError as e:
        refusal = e
        after = t
    else:
        await d.tx.save_transfer(after)
        await d.tx.keep_cancelled_locks(t.id)  # so the right code is told who cancelled
        await d.tx.delete_locks(t.id)
    detail: dict[str, object] = {"state": t.state.value}
    if declining:
        detail["reason"] = "declined"
    await d.record(
        "phone-revocation",
        t.id,
        actor=who.value,
        outcome="failure" if refusal else "success",
        **detail,
    )
    return await phone_document(d.tx, after, d.now), refusal


async def revoke(
    d: Desk, token: str, role: Revoker | None = None
) -> tuple[dict[str, object], errors.RelayError | None]:
    """Withdraw the transfer before the trauma center takes it; `role` is who cancels, as the
    phone says (used only when nobody authorized from this link: see `_canceller`). Returns the
    phone's document and the refusal, if any, for the caller to raise once this visit has
    committed: a refused revocation is audited too."""
    return await _withdraw(d, token, role, declining=False)


async def decline(
    d: Desk, token: str, role: Revoker
) -> tuple[dict[str, object], errors.RelayError | None]:
    """The patient or family (`role`) says no before anyone authorized: the transfer is
    revoked by them, its code dies at once, and the sender's status says they declined.
    Returns as `revoke` does; refused (and audited) once the transfer is authorized."""
    return await _withdraw(d, token, role, declining=True)
