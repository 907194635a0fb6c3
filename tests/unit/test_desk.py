"""The desk (`relay.desk`) with a recorder for a transaction: each piece of business loads,
checks who may see the transfer, asks the lifecycle, persists and audits, in that order and
nothing else; a caller who may not see the transfer changes nothing and learns nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from relay import audit, errors
from relay.desk import documents, patient, sending
from relay.desk.visit import UNKNOWN, Caller, Desk
from relay.lifecycle import Authorizer, Revoker, State, Transfer
from relay.storage.models import AuditEvent
from transfer_codes.tokens import token_digest

T0 = 1_800_000_000.0
NOW = T0 + 60.0
SENDER = Caller("st-mary-er", "sending", "10.0.0.1")
RECIPIENT = Caller("county-trauma", "receiving", "10.0.0.2")
STRANGER = Caller("other-er", "sending", "10.0.0.3")
PHONE = Caller(UNKNOWN, UNKNOWN, "10.0.0.4")


def awaiting() -> Transfer:
    t = Transfer(
        id="0" * 24,
        sender=SENDER.name,
        recipient=RECIPIENT.name,
        locator=7,
        created_at=T0,
        expires_at=T0 + 3600,
    )
    return t.locks_installed(T0)


class Recorder:
    """A `MetadataTransaction` that logs every call as `(name, args)` and answers reads from
    `answers` (None when not given)."""

    def __init__(self, **answers: object) -> None:
        self.log: list[tuple[str, tuple[object, ...]]] = []
        self.answers = answers

    def __getattr__(self, name: str) -> Callable[..., Awaitable[object]]:
        async def call(*args: object) -> object:
            self.log.append((name, args))
            return self.answers.get(name)

        return call


def run(d: Desk, step: Callable[[Desk], Awaitable[Any]]) -> Any:
    return asyncio.run(step(d))


def desk(caller: Caller, **answers: object) -> tuple[Desk, Recorder]:
    tx = Recorder(**answers)
    return Desk(tx, caller, NOW), tx  # type: ignore[arg-type]


def audited(action: str, actor: Caller, **fields: Any) -> AuditEvent:
    event = {
        "event_id": audit.EVENT_IDS[action],
        "action": action,
        "actor": actor.name,
        "actor_role": actor.role,
        "transfer_id": awaiting().id,
        "outcome": "success",
        "detail": {},
        "remote": actor.remote,
    }
    return AuditEvent(**(event | fields))


def test_revoke_loads_persists_and_audits_once() -> None:
    d, tx = desk(SENDER, transfer=awaiting())
    t = run(d, lambda d: sending.revoke(d, awaiting().id))
    assert (t.state, t.revoked_at, t.revoked_by) == (State.REVOKED, NOW, Revoker.SENDING_SITE)
    assert t.was_declined() is False
    assert tx.log == [
        ("transfer", (awaiting().id,)),
        ("delete_locks", (t.id,)),
        ("save_transfer", (t,)),
        ("audit", (audited("transfer-revoked", SENDER), NOW)),
    ]


@pytest.mark.parametrize("caller", [RECIPIENT, STRANGER], ids=["recipient", "stranger"])
@pytest.mark.parametrize(
    "step",
    [
        lambda d: sending.revoke(d, awaiting().id),
        lambda d: sending.break_glass(d, awaiting().id, b"sealed"),
        lambda d: sending.install_phone_documents(d, awaiting().id, {"summary": b"sealed"}),
    ],
    ids=["revoke", "break-glass", "phone-documents"],
)
def test_only_the_sender_may_act_and_others_change_nothing(
    caller: Caller, step: Callable[[Desk], Awaitable[object]]
) -> None:
    d, tx = desk(caller, transfer=awaiting())
    with pytest.raises(errors.NotFound) as caught:
        run(d, step)
    assert type(caught.value) is errors.NotFound
    assert tx.log == [("transfer", (awaiting().id,))]


def test_break_glass_after_consent_is_refused_before_anything_is_written() -> None:
    d, tx = desk(SENDER, transfer=awaiting().authorized(T0, Authorizer.PATIENT))
    with pytest.raises(errors.InvalidTransition):
        run(d, lambda d: sending.break_glass(d, awaiting().id, b"sealed"))
    assert tx.log == [("transfer", (awaiting().id,))]


@pytest.mark.parametrize(
    ("caller", "visible"),
    [(SENDER, True), (RECIPIENT, False), (STRANGER, False)],
    ids=["sender", "recipient-before-redemption", "stranger"],
)
def test_status_is_read_only_by_who_may_see_it(caller: Caller, visible: bool) -> None:
    d, tx = desk(caller, transfer=awaiting(), object_statuses=[], manifest_closed=False)
    if not visible:
        with pytest.raises(errors.NotFound):
            run(d, lambda d: documents.status(d, awaiting().id))
        assert tx.log == [("transfer", (awaiting().id,))]
        return
    document = run(d, lambda d: documents.status(d, awaiting().id))
    assert document["state"] == State.AWAITING_AUTHORIZATION.value
    assert tx.log[-1] == ("audit", (audited("status-read", SENDER), NOW))


def test_a_phone_status_is_audited_as_the_patient() -> None:
    d, tx = desk(PHONE, transfer_by_authorization=awaiting())
    document = run(d, lambda d: patient.status(d, "token"))
    assert (document["state"], document["can_revoke"]) == ("awaiting_authorization", True)
    patient_actor = Caller("patient", "patient", PHONE.remote)
    detail = {"state": "awaiting_authorization"}
    assert tx.log[-1] == (
        "audit",
        (audited("phone-status-read", patient_actor, detail=detail), NOW),
    )


def test_a_refused_authorization_is_audited_and_handed_back() -> None:
    revoked = awaiting().revoked(T0, Revoker.SENDING_SITE)
    d, tx = desk(PHONE, transfer_by_authorization=revoked)
    t, refusal = run(d, lambda d: patient.authorize(d, "token", Authorizer.FAMILY, b"sealed"))
    assert (t, type(refusal)) == (revoked, errors.TransferRevoked)
    family = Caller("family", "family", PHONE.remote)
    event = audited("patient-authorization", family, outcome="failure", detail={"state": "revoked"})
    assert tx.log == [
        ("transfer_by_authorization", (token_digest("token"),)),
        ("audit", (event, NOW)),
    ]


def test_a_refused_phone_revocation_is_audited_and_handed_back() -> None:
    redeemed, _ = awaiting().authorized(T0, Authorizer.FAMILY).redeem_attempted(T0, True)
    d, tx = desk(PHONE, transfer_by_authorization=redeemed)
    document, refusal = run(d, lambda d: patient.revoke(d, "token"))
    assert isinstance(refusal, errors.AlreadyRedeemed)
    assert refusal.detail == patient.ALREADY_TAKEN
    assert document["can_revoke"] is False
    family = Caller("family", "family", PHONE.remote)
    event = audited("phone-revocation", family, outcome="failure", detail={"state": "redeemed"})
    assert ("audit", (event, NOW)) in tx.log
    assert not any(name in ("save_transfer", "delete_locks") for name, _ in tx.log)


@pytest.mark.parametrize("role", [Revoker.PATIENT, Revoker.FAMILY])
def test_a_phone_decline_revokes_kills_the_code_and_is_audited_once(role: Revoker) -> None:
    d, tx = desk(PHONE, transfer_by_authorization=awaiting())
    document, refusal = run(d, lambda d: patient.decline(d, "token", role))
    assert refusal is None
    declined = awaiting().declined(NOW, role)
    assert (document["state"], document["revoked_by"], document["declined"]) == (
        "revoked",
        role.value,
        True,
    )
    actor = Caller(role.value, role.value, PHONE.remote)
    detail = {"state": "awaiting_authorization", "reason": "declined"}
    writes = [entry for entry in tx.log if entry[0] in ("save_transfer", "delete_locks", "audit")]
    assert writes == [
        ("save_transfer", (declined,)),
        ("delete_locks", (declined.id,)),
        ("audit", (audited("phone-revocation", actor, detail=detail), NOW)),
    ]


def test_a_decline_after_authorization_is_refused_audited_and_changes_nothing() -> None:
    d, tx = desk(PHONE, transfer_by_authorization=awaiting().authorized(T0, Authorizer.PATIENT))
    document, refusal = run(d, lambda d: patient.decline(d, "token", Revoker.FAMILY))
    assert type(refusal) is errors.InvalidTransition
    assert (document["state"], document["revoked_by"], document["declined"]) == (
        "authorized",
        None,
        False,
    )
    family = Caller("family", "family", PHONE.remote)
    detail = {"state": "authorized", "reason": "declined"}
    event = audited("phone-revocation", family, outcome="failure", detail=detail)
    assert ("audit", (event, NOW)) in tx.log
    assert not any(name in ("save_transfer", "delete_locks") for name, _ in tx.log)


@pytest.mark.parametrize(
    ("authorized_by", "given", "recorded"),
    [
        (Authorizer.FAMILY, Revoker.PATIENT, Revoker.FAMILY),  # the link authorized as family
        (Authorizer.PATIENT, None, Revoker.PATIENT),
        (Authorizer.BREAK_GLASS, Revoker.FAMILY, Revoker.FAMILY),  # the phone says who
        (Authorizer.BREAK_GLASS, None, Revoker.PATIENT),
    ],
)
def test_a_phone_cancel_records_who_cancelled(
    authorized_by: Authorizer, given: Revoker | None, recorded: Revoker
) -> None:
    d, _ = desk(PHONE, transfer_by_authorization=awaiting().authorized(T0, authorized_by))
    document, refusal = run(d, lambda d: patient.revoke(d, "token", given))
    assert refusal is None
    assert (document["revoked_by"], document["declined"]) == (recorded.value, False)


def test_an_unknown_phone_link_is_refused_without_writing() -> None:
    d, tx = desk(PHONE)
    with pytest.raises(patient.UnknownLink):
        run(d, lambda d: patient.status(d, "token"))
    assert [name for name, _ in tx.log] == ["transfer_by_authorization"]
