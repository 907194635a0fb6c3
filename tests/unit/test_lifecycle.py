"""The transfer lifecycle (`relay.lifecycle.Transfer`): every move and every refusal, with the
time passed in, and a check that docs/lifecycle.md draws exactly the moves the code makes."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
import state_drawing

from relay import errors
from relay.lifecycle import (
    FINAL_STATES,
    MAX_FAILED_ATTEMPTS,
    Authorizer,
    RedeemOutcome,
    Revoker,
    State,
    Transfer,
)

T0 = 1_800_000_000.0
EXPIRY = 72 * 3600.0
EXPIRES_AT = T0 + EXPIRY
NOW = T0 + 60.0
LATER = T0 + 120.0
DOC = Path(__file__).resolve().parents[2] / "docs" / "lifecycle.md"


def fresh() -> Transfer:
    return Transfer(
        id="0" * 24,
        sender="st-mary-er",
        recipient="county-trauma",
        locator=7,
        created_at=T0,
        expires_at=EXPIRES_AT,
    )


def awaiting() -> Transfer:
    return fresh().locks_installed(NOW)


def authorized(by: Authorizer = Authorizer.PATIENT) -> Transfer:
    return awaiting().authorized(NOW, by)


def fail(t: Transfer, times: int, now: float = NOW) -> Transfer:
    for _ in range(times):
        t, _outcome = t.redeem_attempted(now, proof_ok=False)
    return t


def locked(*, authorized_first: bool) -> Transfer:
    start = authorized() if authorized_first else awaiting()
    t, outcome = fail(start, MAX_FAILED_ATTEMPTS - 1).redeem_attempted(NOW, proof_ok=False)
    assert outcome == RedeemOutcome.LOCKED_NOW
    return t


def redeemed() -> Transfer:
    t, outcome = authorized().redeem_attempted(NOW, proof_ok=True)
    assert outcome == RedeemOutcome.REDEEMED
    return t


def delivered() -> Transfer:
    return redeemed().receipt_received(LATER)


def revoked() -> Transfer:
    return authorized().revoked(NOW, Revoker.SENDING_SITE)


def expired() -> Transfer:
    return authorized().expired(EXPIRES_AT)


BUILDERS: dict[State, Callable[[], Transfer]] = {
    State.CREATED: fresh,
    State.AWAITING_AUTHORIZATION: awaiting,
    State.AUTHORIZED: authorized,
    State.LOCKED: lambda: locked(authorized_first=True),
    State.REDEEMED: redeemed,
    State.DELIVERED: delivered,
    State.REVOKED: revoked,
    State.EXPIRED: expired,
}


def test_builders_reach_every_state() -> None:
    assert {s: b().state for s, b in BUILDERS.items()} == {s: s for s in State}


# -- creation and keys ------------------------------------------------------------------------


def test_a_new_transfer_is_created_with_nothing_recorded() -> None:
    t = fresh()
    assert (t.state, t.failed_attempts, t.authorized_at, t.authorized_by) == (
        State.CREATED,
        0,
        None,
        None,
    )
    assert (t.redeemed_at, t.delivered_at, t.revoked_at) == (None, None, None)


def test_locks_installed_moves_created_to_awaiting_authorization() -> None:
    t = fresh()
    after = t.locks_installed(NOW)
    assert after.state == State.AWAITING_AUTHORIZATION
    assert t.state == State.CREATED  # events return a new Transfer; the old one is unchanged


@pytest.mark.parametrize("state", [s for s in State if s != State.CREATED])
def test_locks_installed_only_once(state: State) -> None:
    t = BUILDERS[state]()
    with pytest.raises(errors.InvalidTransition):
        t.locks_installed(NOW)


def test_locks_installed_refused_after_expiry() -> None:
    with pytest.raises(errors.TransferExpired):
        fresh().locks_installed(EXPIRES_AT)


# -- authorization ----------------------------------------------------------------------------


@pytest.mark.parametrize("by", list(Authorizer))
def test_authorized_records_who_and_when(by: Authorizer) -> None:
    t = awaiting().authorized(LATER, by)
    assert (t.state, t.authorized_at, t.authorized_by) == (State.AUTHORIZED, LATER, by)


def test_authorizing_twice_changes_nothing() -> None:
    t = authorized(Authorizer.PATIENT)
    assert t.authorized(LATER, Authorizer.BREAK_GLASS) == t


def test_authorizing_while_locked_is_recorded_for_the_reissue() -> None:
    t = locked(authorized_first=False).authorized(LATER, Authorizer.BREAK_GLASS)
    assert (t.state, t.authorized_at, t.authorized_by) == (
        State.LOCKED,
        LATER,
        Authorizer.BREAK_GLASS,
    )


def test_authorizing_again_while_locked_is_harmless() -> None:
    t = locked(authorized_first=True)
    assert t.authorized(LATER, Authorizer.PATIENT) == t


@pytest.mark.parametrize("state", [State.CREATED, State.REDEEMED, State.DELIVERED])
def test_authorized_refused_in(state: State) -> None:
    with pytest.raises(errors.InvalidTransition) as caught:
        BUILDERS[state]().authorized(LATER, Authorizer.PATIENT)
    assert type(caught.value) is errors.InvalidTransition
    assert state.value in caught.value.detail


@pytest.mark.parametrize(
    ("build", "now", "error"),
    [
        (awaiting, EXPIRES_AT, errors.TransferExpired),
        (authorized, EXPIRES_AT + 1, errors.TransferExpired),
        (expired, NOW, errors.TransferExpired),
        (revoked, NOW, errors.TransferRevoked),
    ],
)
def test_authorized_refused_when_dead(
    build: Callable[[], Transfer], now: float, error: type[errors.RelayError]
) -> None:
    with pytest.raises(error):
        build().authorized(now, Authorizer.PATIENT)


# -- break-glass ------------------------------------------------------------------------------


def test_break_glass_authorizes_an_awaiting_transfer() -> None:
    t = awaiting().break_glass_used(LATER)
    assert (t.state, t.authorized_at, t.authorized_by) == (
        State.AUTHORIZED,
        LATER,
        Authorizer.BREAK_GLASS,
    )


def test_break_glass_again_changes_nothing() -> None:
    t = authorized(Authorizer.BREAK_GLASS)
    assert t.break_glass_used(LATER) == t


def test_break_glass_while_locked_is_recorded_for_the_reissue() -> None:
    t = locked(authorized_first=False).break_glass_used(LATER)
    assert (t.state, t.authorized_at, t.authorized_by) == (
        State.LOCKED,
        LATER,
        Authorizer.BREAK_GLASS,
    )


@pytest.mark.parametrize("by", [Authorizer.PATIENT, Authorizer.FAMILY])
@pytest.mark.parametrize(
    "build",
    [authorized, lambda by: locked(authorized_first=False).authorized(NOW, by)],
    ids=["authorized", "locked"],
)
def test_break_glass_refused_after_the_patient_or_family_authorized(
    build: Callable[[Authorizer], Transfer], by: Authorizer
) -> None:
    with pytest.raises(errors.InvalidTransition) as caught:
        build(by).break_glass_used(LATER)
    assert type(caught.value) is errors.InvalidTransition
    assert caught.value.detail == (
        f"This transfer is already authorized by the {by.value}; break-glass is not needed."
    )


def test_break_glass_after_consent_is_refused_as_such_even_when_due() -> None:
    # The consent is the reason given, not the expiry: the sender is told what it can act on.
    with pytest.raises(errors.InvalidTransition) as caught:
        authorized().break_glass_used(EXPIRES_AT)
    assert type(caught.value) is errors.InvalidTransition


@pytest.mark.parametrize(
    ("build", "now", "error"),
    [
        (awaiting, EXPIRES_AT, errors.TransferExpired),
        (lambda: awaiting().revoked(NOW, Revoker.FAMILY), NOW, errors.TransferRevoked),
        (fresh, NOW, errors.InvalidTransition),
        (
            lambda: authorized(Authorizer.BREAK_GLASS).redeem_attempted(NOW, True)[0],
            NOW,
            errors.InvalidTransition,
        ),
    ],
    ids=["awaiting-due", "revoked", "created", "redeemed"],
)
def test_break_glass_refused_as_authorized_is(
    build: Callable[[], Transfer], now: float, error: type[errors.RelayError]
) -> None:
    with pytest.raises(error):
        build().break_glass_used(now)


# -- redemption -------------------------------------------------------------------------------


def test_right_proof_after_authorization_redeems() -> None:
    t, outcome = authorized().redeem_attempted(LATER, proof_ok=True)
    assert outcome == RedeemOutcome.REDEEMED
    assert (t.state, t.redeemed_at) == (State.REDEEMED, LATER)


def test_right_proof_before_authorization_consumes_nothing() -> None:
    t = fail(awaiting(), 3)
    after, outcome = t.redeem_attempted(LATER, proof_ok=True)
    assert outcome == RedeemOutcome.NOT_YET_AUTHORIZED
    assert after == t
    # and once authorized, the same code still works
    final, outcome = after.authorized(LATER, Authorizer.PATIENT).redeem_attempted(LATER, True)
    assert (final.state, outcome) == (State.REDEEMED, RedeemOutcome.REDEEMED)


def test_max_failed_attempts_is_ten() -> None:
    assert MAX_FAILED_ATTEMPTS == 10


@pytest.mark.parametrize("build", [awaiting, authorized])
def test_lock_after_exactly_ten_wrong_proofs(build: Callable[[], Transfer]) -> None:
    t = build()
    start = t.state
    for attempt in range(1, MAX_FAILED_ATTEMPTS):
        t, outcome = t.redeem_attempted(NOW, proof_ok=False)
        assert (t.state, t.failed_attempts, outcome) == (start, attempt, RedeemOutcome.REJECTED)
    t, outcome = t.redeem_attempted(NOW, proof_ok=False)
    assert (t.state, t.failed_attempts, outcome) == (
        State.LOCKED,
        MAX_FAILED_ATTEMPTS,
        RedeemOutcome.LOCKED_NOW,
    )
    # the right proof is refused now, exactly like a wrong one, and counts nothing more
    for proof_ok in (True, False):
        after, outcome = t.redeem_attempted(LATER, proof_ok=proof_ok)
        assert (after, outcome) == (t, RedeemOutcome.REJECTED)


def test_redemption_is_once() -> None:
    t = redeemed()
    for proof_ok in (True, False):
        after, outcome = t.redeem_attempted(LATER, proof_ok=proof_ok)
        assert (after, outcome) == (t, RedeemOutcome.REJECTED)


@pytest.mark.parametrize(
    ("build", "now"),
    [
        (fresh, NOW),
        (redeemed, NOW),
        (delivered, LATER),
        (lambda: locked(authorized_first=True), NOW),
        (lambda: locked(authorized_first=False), NOW),
        (revoked, NOW),
        (expired, EXPIRES_AT),
        (authorized, EXPIRES_AT),  # due, though the sweeper has not run yet
        (awaiting, EXPIRES_AT + 3600),
    ],
    ids=[
        "created",
        "redeemed",
        "delivered",
        "locked",
        "locked-unauthorized",
        "revoked",
        "expired",
        "authorized-due",
        "awaiting-due",
    ],
)
@pytest.mark.parametrize("proof_ok", [True, False], ids=["right", "wrong"])
def test_unusable_transfers_reject_alike(
    build: Callable[[], Transfer], now: float, proof_ok: bool
) -> None:
    t = build()
    after, outcome = t.redeem_attempted(now, proof_ok=proof_ok)
    assert outcome == RedeemOutcome.REJECTED
    assert after == t  # not even the failure count moves


def test_redemption_just_before_expiry_still_works() -> None:
    t, outcome = authorized().redeem_attempted(EXPIRES_AT - 0.001, proof_ok=True)
    assert (t.state, outcome) == (State.REDEEMED, RedeemOutcome.REDEEMED)


# -- repeating the one redemption (its answer was lost) ----------------------------------------


def test_the_same_redemption_with_a_right_proof_is_repeated_and_changes_nothing() -> None:
    t = redeemed()
    after, outcome = t.redeem_attempted(LATER, proof_ok=True, same_redemption=True)
    assert (after, outcome) == (t, RedeemOutcome.REPEATED)


@pytest.mark.parametrize(
    ("build", "now", "proof_ok"),
    [
        (redeemed, LATER, False),  # the id alone is not enough
        (redeemed, EXPIRES_AT, True),  # due, though the sweeper has not run yet
        (delivered, LATER, True),
        (expired, EXPIRES_AT, True),
        (lambda: locked(authorized_first=True), NOW, True),
        (revoked, NOW, True),
        (fresh, NOW, True),
    ],
    ids=["wrong-proof", "redeemed-due", "delivered", "expired", "locked", "revoked", "created"],
)
def test_the_same_redemption_is_refused_alike_elsewhere(
    build: Callable[[], Transfer], now: float, proof_ok: bool
) -> None:
    t = build()
    after, outcome = t.redeem_attempted(now, proof_ok=proof_ok, same_redemption=True)
    assert (after, outcome) == (t, RedeemOutcome.REJECTED)


@pytest.mark.parametrize("build", [awaiting, authorized])
def test_same_redemption_changes_nothing_before_redemption(
    build: Callable[[], Transfer],
) -> None:
    for proof_ok in (True, False):
        plain = build().redeem_attempted(LATER, proof_ok=proof_ok)
        flagged = build().redeem_attempted(LATER, proof_ok=proof_ok, same_redemption=True)
        assert flagged == plain


# -- re-issue ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "back"),
    [
        (lambda: locked(authorized_first=False), State.AWAITING_AUTHORIZATION),
        (lambda: locked(authorized_first=True), State.AUTHORIZED),
        (
            lambda: locked(authorized_first=False).authorized(NOW, Authorizer.BREAK_GLASS),
            State.AUTHORIZED,
        ),
        (lambda: fail(awaiting(), 4), State.AWAITING_AUTHORIZATION),
        (lambda: fail(authorized(), 9), State.AUTHORIZED),
    ],
    ids=[
        "locked-before-authorization",
        "locked-after-authorization",
        "authorized-while-locked",
        "awaiting",
        "authorized",
    ],
)
def test_reissue_unlocks_returns_and_resets_the_count(
    build: Callable[[], Transfer], back: State
) -> None:
    t = build().reissued(LATER)
    assert (t.state, t.failed_attempts) == (back, 0)


def test_after_reissue_ten_more_wrong_proofs_lock_again() -> None:
    t = locked(authorized_first=True).reissued(LATER)
    t = fail(t, MAX_FAILED_ATTEMPTS - 1, LATER)
    assert t.state == State.AUTHORIZED
    t, outcome = t.redeem_attempted(LATER, proof_ok=False)
    assert (t.state, outcome) == (State.LOCKED, RedeemOutcome.LOCKED_NOW)


def test_after_reissue_the_right_proof_redeems() -> None:
    t = locked(authorized_first=True).reissued(LATER)
    t, outcome = t.redeem_attempted(LATER, proof_ok=True)
    assert (t.state, outcome) == (State.REDEEMED, RedeemOutcome.REDEEMED)


@pytest.mark.parametrize(
    ("build", "now", "error"),
    [
        (fresh, NOW, errors.InvalidTransition),
        (redeemed, NOW, errors.InvalidTransition),
        (delivered, LATER, errors.InvalidTransition),
        (revoked, NOW, errors.TransferRevoked),
        (expired, NOW, errors.TransferExpired),
        (lambda: locked(authorized_first=True), EXPIRES_AT, errors.TransferExpired),
    ],
    ids=["created", "redeemed", "delivered", "revoked", "expired", "locked-due"],
)
def test_reissue_refused(
    build: Callable[[], Transfer], now: float, error: type[errors.RelayError]
) -> None:
    with pytest.raises(error):
        build().reissued(now)


# -- receipt ----------------------------------------------------------------------------------


def test_receipt_after_redemption_delivers() -> None:
    t = redeemed().receipt_received(LATER)
    assert (t.state, t.delivered_at) == (State.DELIVERED, LATER)


def test_second_receipt_updates_the_time_only() -> None:
    t = delivered().receipt_received(LATER + 5)
    assert (t.state, t.delivered_at) == (State.DELIVERED, LATER + 5)


@pytest.mark.parametrize(
    "state",
    [
        State.CREATED,
        State.AWAITING_AUTHORIZATION,
        State.AUTHORIZED,
        State.LOCKED,
        State.REVOKED,
        State.EXPIRED,
    ],
)
def test_receipt_refused_before_redemption(state: State) -> None:
    with pytest.raises(errors.InvalidTransition):
        BUILDERS[state]().receipt_received(LATER)


def test_a_review_copy_leaves_the_transfer_redeemed_for_the_later_receipt() -> None:
    t = redeemed()
    assert t.review_copy_kept(LATER) == t
    assert t.review_copy_kept(LATER).receipt_received(LATER + 5).state == State.DELIVERED


@pytest.mark.parametrize("state", [s for s in State if s != State.REDEEMED])
def test_a_review_copy_is_refused_unless_redeemed(state: State) -> None:
    with pytest.raises((errors.InvalidTransition, errors.TransferExpired, errors.TransferRevoked)):
        BUILDERS[state]().review_copy_kept(LATER)


def test_a_discard_leaves_the_transfer_redeemed() -> None:
    t = redeemed()
    assert t.discard_reported(LATER) == t


@pytest.mark.parametrize("state", [s for s in State if s != State.REDEEMED])
def test_a_discard_is_refused_unless_redeemed(state: State) -> None:
    with pytest.raises((errors.InvalidTransition, errors.TransferExpired, errors.TransferRevoked)):
        BUILDERS[state]().discard_reported(LATER)


def test_a_discard_is_refused_once_the_transfer_is_due() -> None:
    with pytest.raises(errors.TransferExpired):
        redeemed().discard_reported(EXPIRES_AT)


# -- revoke -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "state", [State.CREATED, State.AWAITING_AUTHORIZATION, State.AUTHORIZED, State.LOCKED]
)
@pytest.mark.parametrize("by", list(Revoker))
def test_revoke_before_redemption_records_who(state: State, by: Revoker) -> None:
    t = BUILDERS[state]().revoked(LATER, by)
    assert (t.state, t.revoked_at, t.revoked_by) == (State.REVOKED, LATER, by)


@pytest.mark.parametrize("state", [State.REDEEMED, State.DELIVERED])
@pytest.mark.parametrize("now", [LATER, EXPIRES_AT + 1])
def test_revoke_after_redemption_is_already_redeemed(state: State, now: float) -> None:
    with pytest.raises(errors.AlreadyRedeemed):
        BUILDERS[state]().revoked(now, Revoker.SENDING_SITE)


@pytest.mark.parametrize(
    ("build", "now", "error"),
    [
        (revoked, LATER, errors.TransferRevoked),
        (expired, LATER, errors.TransferExpired),
        (authorized, EXPIRES_AT, errors.TransferExpired),
    ],
)
def test_revoke_refused_when_dead(
    build: Callable[[], Transfer], now: float, error: type[errors.RelayError]
) -> None:
    with pytest.raises(error):
        build().revoked(now, Revoker.PATIENT)


# -- declining (the patient or family says no before anyone authorized) ------------------------

PHONE = [Revoker.PATIENT, Revoker.FAMILY]


@pytest.mark.parametrize("by", PHONE)
@pytest.mark.parametrize(
    "build",
    [fresh, awaiting, lambda: locked(authorized_first=False)],
    ids=["created", "awaiting", "locked-unauthorized"],
)
def test_declined_is_a_revocation_by_the_patient_or_family(
    build: Callable[[], Transfer], by: Revoker
) -> None:
    before = build()
    t = before.declined(LATER, by)
    assert (t.state, t.revoked_at, t.revoked_by) == (State.REVOKED, LATER, by)
    assert t.was_declined() is True
    assert before.was_declined() is False
    # the code is dead like any revoked transfer's: refused exactly like a wrong code
    for proof_ok in (True, False):
        assert t.redeem_attempted(LATER, proof_ok=proof_ok) == (t, RedeemOutcome.REJECTED)
    with pytest.raises(errors.TransferRevoked):
        t.reissued(LATER)
    with pytest.raises(errors.TransferRevoked):
        t.authorized(LATER, Authorizer.FAMILY)


@pytest.mark.parametrize("by", PHONE)
@pytest.mark.parametrize(
    "build",
    [
        authorized,
        lambda: authorized(Authorizer.BREAK_GLASS),
        lambda: locked(authorized_first=True),
    ],
    ids=["authorized", "break-glass", "locked-authorized"],
)
def test_declined_is_refused_once_someone_authorized(
    build: Callable[[], Transfer], by: Revoker
) -> None:
    t = build()
    with pytest.raises(errors.InvalidTransition) as caught:
        t.declined(LATER, by)
    assert type(caught.value) is errors.InvalidTransition
    assert "can still be cancelled" in caught.value.detail
    # cancelling is what is left, and that is not declining
    cancelled = t.revoked(LATER, by)
    assert (cancelled.revoked_by, cancelled.was_declined()) == (by, False)


def test_only_the_patient_or_family_can_decline() -> None:
    with pytest.raises(errors.InvalidTransition) as caught:
        awaiting().declined(LATER, Revoker.SENDING_SITE)
    assert type(caught.value) is errors.InvalidTransition


@pytest.mark.parametrize(
    ("build", "now", "error"),
    [
        (redeemed, LATER, errors.AlreadyRedeemed),
        (delivered, LATER, errors.AlreadyRedeemed),
        (revoked, LATER, errors.TransferRevoked),
        (lambda: awaiting().declined(NOW, Revoker.FAMILY), LATER, errors.TransferRevoked),
        (lambda: awaiting().expired(EXPIRES_AT), LATER, errors.TransferExpired),
        (awaiting, EXPIRES_AT, errors.TransferExpired),
    ],
    ids=["redeemed", "delivered", "revoked", "declined", "expired", "awaiting-due"],
)
def test_declined_is_refused_as_revoked_is_when_over(
    build: Callable[[], Transfer], now: float, error: type[errors.RelayError]
) -> None:
    with pytest.raises(error):
        build().declined(now, Revoker.PATIENT)


@pytest.mark.parametrize("by", list(Revoker))
def test_a_sender_revocation_or_a_cancel_after_consent_is_not_a_decline(by: Revoker) -> None:
    assert authorized().revoked(LATER, by).was_declined() is False
    # before anyone authorized, only the patient or family revoking is their declining
    assert awaiting().revoked(LATER, by).was_declined() is (by in PHONE)


# -- expiry -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "state",
    [State.CREATED, State.AWAITING_AUTHORIZATION, State.AUTHORIZED, State.LOCKED, State.REDEEMED],
)
def test_expiry_at_expires_at(state: State) -> None:
    t = BUILDERS[state]()
    assert not t.is_due(EXPIRES_AT - 0.001)
    assert t.is_due(EXPIRES_AT)
    assert t.expired(EXPIRES_AT).state == State.EXPIRED


def test_expiry_refused_before_time() -> None:
    with pytest.raises(errors.InvalidTransition):
        authorized().expired(EXPIRES_AT - 0.001)


@pytest.mark.parametrize("state", sorted(FINAL_STATES))
def test_final_states_never_fall_due(state: State) -> None:
    t = BUILDERS[state]()
    assert not t.is_due(EXPIRES_AT + 10 * EXPIRY)
    with pytest.raises(errors.InvalidTransition):
        t.expired(EXPIRES_AT + 10 * EXPIRY)


# -- questions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "accepts"),
    [
        (State.CREATED, True),
        (State.AWAITING_AUTHORIZATION, True),
        (State.AUTHORIZED, True),
        (State.LOCKED, True),
        (State.REDEEMED, True),  # cut-through: the receiver may redeem before the upload ends
        (State.DELIVERED, False),
        (State.REVOKED, False),
        (State.EXPIRED, False),
    ],
)
def test_accepts_upload(state: State, accepts: bool) -> None:
    t = BUILDERS[state]()
    assert t.accepts_upload(LATER) is accepts
    assert t.accepts_upload(EXPIRES_AT) is False


@pytest.mark.parametrize("state", list(State))
def test_downloadable_only_by_the_recipient_after_redemption(state: State) -> None:
    t = BUILDERS[state]()
    expected = state in (State.REDEEMED, State.DELIVERED)
    assert t.downloadable_by("county-trauma", LATER) is expected
    assert t.downloadable_by("st-mary-er", LATER) is False
    assert t.downloadable_by("other-trauma", LATER) is False


@pytest.mark.parametrize("state", [State.REDEEMED, State.DELIVERED])
def test_nothing_is_downloadable_after_expiry(state: State) -> None:
    # The sweeper deletes the sealed objects of every transfer past its expiry, delivered ones
    # included, so a download after expiry must be refused rather than fail half-way.
    assert BUILDERS[state]().downloadable_by("county-trauma", EXPIRES_AT) is False


def test_state_at_reports_a_due_transfer_as_expired() -> None:
    reported = {
        s: (BUILDERS[s]().state_at(EXPIRES_AT - 0.001), BUILDERS[s]().state_at(EXPIRES_AT))
        for s in State
    }
    final = {s: (s, s) for s in FINAL_STATES}
    live = {s: (s, State.EXPIRED) for s in set(State) - FINAL_STATES}
    assert reported == final | live


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("now", [LATER, EXPIRES_AT], ids=["live", "due"])
def test_can_revoke_says_whether_revoked_succeeds(state: State, now: float) -> None:
    t = BUILDERS[state]()
    try:
        t.revoked(now, Revoker.SENDING_SITE)
    except errors.InvalidTransition:
        succeeds = False
    else:
        succeeds = True
    assert t.can_revoke(now) is succeeds
    revocable = {State.CREATED, State.AWAITING_AUTHORIZATION, State.AUTHORIZED, State.LOCKED}
    assert succeeds is (state in revocable and now == LATER)


@pytest.mark.parametrize("state", list(State))
def test_status_visible_to_the_sender_always_and_the_recipient_once_taken(state: State) -> None:
    t = BUILDERS[state]()
    seen = {s: t.visible_to(s) for s in ("st-mary-er", "county-trauma", "other-trauma")}
    taken = state in (State.REDEEMED, State.DELIVERED)
    assert seen == {"st-mary-er": True, "county-trauma": taken, "other-trauma": False}


def test_a_taken_transfer_stays_visible_to_the_recipient_until_the_sweeper_expires_it() -> None:
    # Status is about what the relay recorded; the sweeper's `expired` ends the recipient's view.
    assert redeemed().visible_to("county-trauma") is True
    assert redeemed().expired(EXPIRES_AT).visible_to("county-trauma") is False


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("now", [LATER, EXPIRES_AT], ids=["live", "due"])
def test_readable_by_the_sender_always_and_the_recipient_while_downloadable(
    state: State, now: float
) -> None:
    t = BUILDERS[state]()
    readable = {s: t.readable_by(s, now) for s in ("st-mary-er", "county-trauma", "other-trauma")}
    downloadable = state in (State.REDEEMED, State.DELIVERED) and now == LATER
    assert readable == {
        "st-mary-er": True,
        "county-trauma": downloadable,
        "other-trauma": False,
    }


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("now", [LATER, EXPIRES_AT], ids=["live", "due"])
def test_require_upload_refuses_with_the_reported_state(state: State, now: float) -> None:
    t = BUILDERS[state]()
    if t.accepts_upload(now):
        assert t.require_upload(now) is None
        return
    with pytest.raises(errors.InvalidTransition) as caught:
        t.require_upload(now)
    assert type(caught.value) is errors.InvalidTransition
    assert caught.value.detail == (
        f"This transfer no longer accepts uploads (it is {t.state_at(now).value})."
    )


@pytest.mark.parametrize(
    ("build", "now", "error"),
    [
        (authorized, EXPIRES_AT, errors.TransferExpired),
        (expired, NOW, errors.TransferExpired),
        (revoked, NOW, errors.TransferRevoked),
    ],
    ids=["due", "expired", "revoked"],
)
def test_require_live_refuses_a_transfer_that_is_over(
    build: Callable[[], Transfer], now: float, error: type[errors.RelayError]
) -> None:
    with pytest.raises(error):
        build().require_live(now)


@pytest.mark.parametrize("state", sorted(set(State) - {State.EXPIRED, State.REVOKED}))
def test_require_live_passes_every_other_state(state: State) -> None:
    assert BUILDERS[state]().require_live(LATER) is None


# -- the drawing ------------------------------------------------------------------------------

RIGHT_PROOF = "redeem_attempted (right proof)"
TENTH_WRONG_PROOF = "redeem_attempted (10th wrong proof)"
START = state_drawing.START


def _moves(t: Transfer) -> list[tuple[str, Transfer]]:
    """Every event applied to `t` (live, at NOW; expiry at EXPIRES_AT), with its label as drawn.
    Refused events are left out."""
    moves: list[tuple[str, Transfer]] = []

    def attempt(label: str, event: Callable[[], Transfer]) -> None:
        with contextlib.suppress(errors.InvalidTransition):
            moves.append((label, event()))

    attempt("locks_installed", lambda: t.locks_installed(NOW))
    for by in Authorizer:
        attempt("authorized", partial(t.authorized, NOW, by))
    attempt("authorized", lambda: t.break_glass_used(NOW))  # authorized, by break-glass
    after, outcome = t.redeem_attempted(NOW, proof_ok=True)
    moves.append((RIGHT_PROOF if outcome == RedeemOutcome.REDEEMED else "redeem_attempted", after))
    after, outcome = t.redeem_attempted(NOW, proof_ok=False)
    label = TENTH_WRONG_PROOF if outcome == RedeemOutcome.LOCKED_NOW else "redeem_attempted"
    moves.append((label, after))
    after, outcome = t.redeem_attempted(NOW, proof_ok=True, same_redemption=True)
    label = RIGHT_PROOF if outcome == RedeemOutcome.REDEEMED else "redeem_attempted"
    moves.append((label, after))  # a repeat must never move the state
    attempt("reissued", lambda: t.reissued(NOW))
    attempt("receipt_received", lambda: t.receipt_received(NOW))
    attempt("review_copy_kept", lambda: t.review_copy_kept(NOW))
    attempt("discard_reported", lambda: t.discard_reported(NOW))
    for who in Revoker:
        attempt("revoked", partial(t.revoked, NOW, who))
        attempt("declined", partial(t.declined, NOW, who))
    attempt("expired", lambda: t.expired(EXPIRES_AT))
    return moves


def code_transitions() -> set[tuple[str, str, str]]:
    """(from, to, event) for every state change reachable from a new transfer."""
    seen = {fresh()}
    todo = [fresh()]
    found: set[tuple[str, str, str]] = set()
    while todo:
        t = todo.pop()
        for label, after in _moves(t):
            if after.state != t.state:
                found.add((t.state.value, after.state.value, label))
            if after not in seen:
                seen.add(after)
                todo.append(after)
    return found


def drawn_transitions() -> tuple[set[tuple[str, str, str]], set[str], set[str]]:
    """(transitions, start states, end states) from the mermaid block of docs/lifecycle.md."""
    return state_drawing.drawn_transitions(DOC)


def test_every_drawn_arrow_is_a_move_the_code_makes() -> None:
    drawn, _, _ = drawn_transitions()
    assert drawn - code_transitions() == set()


def test_every_move_the_code_makes_is_drawn() -> None:
    drawn, _, _ = drawn_transitions()
    assert code_transitions() - drawn == set()


def test_drawn_start_and_end_states_match_the_code() -> None:
    _, starts, ends = drawn_transitions()
    assert starts == {fresh().state.value}
    assert ends == {s.value for s in FINAL_STATES}


def test_drawing_names_only_real_states() -> None:
    drawn, starts, ends = drawn_transitions()
    names = {s for move in drawn for s in move[:2]} | starts | ends
    assert names == {s.value for s in State}


def test_the_explorer_sees_every_state() -> None:
    # Guards the two drawing tests: if the explorer stopped early, they would pass vacuously.
    reached = {target for _, target, _ in code_transitions()} | {State.CREATED.value}
    assert reached == {s.value for s in State}
