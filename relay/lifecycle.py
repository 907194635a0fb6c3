"""The transfer lifecycle as a pure state machine: no I/O, time passed in.

    created --locks_installed--> awaiting_authorization --authorized--> authorized
    authorized --redeemed (right proof)--> redeemed --receipt_received--> delivered
    redeemed --review_copy_kept--> redeemed (a copy kept for review is not a delivery)
    redeemed --discard_reported--> redeemed (the trauma center discarded it: nothing more comes)
    awaiting_authorization | authorized --(10th wrong proof)--> locked --reissued--> (previous)
    any non-final state --revoked (before redemption)--> revoked
    created | awaiting_authorization | locked --declined (nobody authorized yet)--> revoked
    any non-final state --now >= expires_at--> expired

Drawn in docs/lifecycle.md; keep the two in step. Methods are named after what happened, take
`now` (seconds since the epoch) and return the decision; the caller persists the new `Transfer`.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

from relay import errors
from transfer_codes.wire import TransferState

MAX_FAILED_ATTEMPTS = 10


State = TransferState  # the states are wire names too; one definition (transfer_codes.wire)


FINAL_STATES = frozenset({State.EXPIRED, State.REVOKED, State.DELIVERED})
REVOCABLE = frozenset({State.CREATED, State.AWAITING_AUTHORIZATION, State.AUTHORIZED, State.LOCKED})
TAKEN = frozenset({State.REDEEMED, State.DELIVERED})  # the recipient holds the key


class Authorizer(enum.StrEnum):
    PATIENT = "patient"
    FAMILY = "family"
    BREAK_GLASS = "break_glass"


class Revoker(enum.StrEnum):
    """Who withdrew a transfer: the patient or their family (on the phone), or its sender."""

    PATIENT = "patient"
    FAMILY = "family"
    SENDING_SITE = "sending_site"


PHONE_HOLDERS = frozenset({Revoker.PATIENT, Revoker.FAMILY})  # who may decline


class RedeemOutcome(enum.StrEnum):
    REDEEMED = "redeemed"
    REJECTED = "rejected"
    LOCKED_NOW = "locked_now"
    NOT_YET_AUTHORIZED = "not_yet_authorized"
    REPEATED = "repeated"  # the one redemption again, for the site whose answer was lost


@dataclass(frozen=True)
class Transfer:
    """One transfer as the relay knows it. Holds no PHI and no key."""

    id: str
    sender: str
    recipient: str
    locator: int
    created_at: float
    expires_at: float
    state: State = State.CREATED
    authorized_at: float | None = None
    authorized_by: Authorizer | None = None
    failed_attempts: int = 0
    redeemed_at: float | None = None
    delivered_at: float | None = None
    revoked_at: float | None = None
    revoked_by: Revoker | None = None

    # -- helpers -------------------------------------------------------------------------

    def _replace(self, **changes: object) -> Transfer:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def is_due(self, now: float) -> bool:
        return self.state not in FINAL_STATES and now >= self.expires_at

    def require_live(self, now: float) -> None:
        """Raises `TransferExpired` (also when due before the sweeper ran) or `TransferRevoked`
        if the transfer is over; returns nothing otherwise."""
        if self.state == State.EXPIRED or self.is_due(now):
            raise errors.TransferExpired()
        if self.state == State.REVOKED:
            raise errors.TransferRevoked()

    # -- events --------------------------------------------------------------------------

    def locks_installed(self, now: float) -> Transfer:
        """The sender uploaded the wrapped key and verifiers: the patient can now authorize."""
        self.require_live(now)
        if self.state != State.CREATED:
            raise errors.InvalidTransition("The keys of this transfer are already installed.")
        return self._replace(state=State.AWAITING_AUTHORIZATION)

    def authorized(self, now: float, by: Authorizer) -> Transfer:
        """The patient, their family, or a clinician by break-glass authorized the transfer."""
        self.require_live(now)
        if self.state == State.AUTHORIZED:
            return self  # authorizing twice is harmless and changes nothing
        if self.state == State.LOCKED:
            if self.authorized_at is not None:
                return self  # as above: a second authorization while locked changes nothing
            return self._replace(authorized_at=now, authorized_by=by)
        if self.state != State.AWAITING_AUTHORIZATION:
            raise errors.InvalidTransition(
                f"This transfer cannot be authorized now (it is {self.state.value})."
            )
        return self._replace(state=State.AUTHORIZED, authorized_at=now, authorized_by=by)

    def break_glass_used(self, now: float) -> Transfer:
        """A clinician authorized by break-glass because nobody can consent. Refused with
        `InvalidTransition` once the patient or family has authorized: the audit trail saying
        "break-glass used" would then disagree with the status. A repeat break-glass is
        harmless, as for `authorized`."""
        if self.authorized_by not in (None, Authorizer.BREAK_GLASS):
            raise errors.InvalidTransition(
                f"This transfer is already authorized by the {self.authorized_by.value}; "
                "break-glass is not needed."
            )
        return self.authorized(now, Authorizer.BREAK_GLASS)

    def redeem_attempted(
        self, now: float, proof_ok: bool, *, same_redemption: bool = False
    ) -> tuple[Transfer, RedeemOutcome]:
        """A receiving site presented a proof. Wrong proofs count; the tenth locks the transfer.

        `same_redemption` means the caller found that the recipient presented the redemption id
        recorded when this transfer was redeemed. With a right proof on a redeemed transfer that
        is the one redemption asked again (its answer was lost on the way): REPEATED, which
        changes nothing and counts nothing.

        Unusable transfers (expired, revoked, locked, redeemed, delivered) reject without
        revealing why: callers answer exactly as for a wrong code.
        """
        if self.is_due(now):
            return self, RedeemOutcome.REJECTED
        if self.state == State.REDEEMED and proof_ok and same_redemption:
            return self, RedeemOutcome.REPEATED
        if self.state not in (State.AWAITING_AUTHORIZATION, State.AUTHORIZED):
            return self, RedeemOutcome.REJECTED
        if not proof_ok:
            failed = self.failed_attempts + 1
            if failed >= MAX_FAILED_ATTEMPTS:
                return self._replace(failed_attempts=failed, state=State.LOCKED), (
                    RedeemOutcome.LOCKED_NOW
                )
            return self._replace(failed_attempts=failed), RedeemOutcome.REJECTED
        if self.state == State.AWAITING_AUTHORIZATION:
            return self, RedeemOutcome.NOT_YET_AUTHORIZED
        return self._replace(state=State.REDEEMED, redeemed_at=now), RedeemOutcome.REDEEMED

    def reissued(self, now: float) -> Transfer:
        """The sender installed a fresh code: the old one is dead and the failure count restarts."""
        self.require_live(now)
        if self.state not in (State.AWAITING_AUTHORIZATION, State.AUTHORIZED, State.LOCKED):
            raise errors.InvalidTransition(
                f"A new code cannot be issued now (the transfer is {self.state.value})."
            )
        back = State.AUTHORIZED if self.authorized_at is not None else State.AWAITING_AUTHORIZATION
        return self._replace(state=back, failed_attempts=0)

    def receipt_received(self, now: float) -> Transfer:
        """The receiving site reports what it stored."""
        if self.state == State.DELIVERED:
            return self._replace(delivered_at=now)
        if self.state != State.REDEEMED:
            raise errors.InvalidTransition("A receipt is only accepted after redemption.")
        return self._replace(state=State.DELIVERED, delivered_at=now)

    def review_copy_kept(self, now: float) -> Transfer:
        """The receiving site saved a copy for a person to review before it goes into its PACS
        (its identity check held the study): still redeemed, not delivered."""
        self.require_live(now)
        if self.state != State.REDEEMED:
            raise errors.InvalidTransition("A review copy is only reported after redemption.")
        return self

    def discard_reported(self, now: float) -> Transfer:
        """The receiving site discarded the study a person reviewed (it went into no record
        there, apart from images its PACS may have stored as they arrived): still redeemed, not
        delivered; its status and the phone say it was discarded."""
        self.require_live(now)
        if self.state != State.REDEEMED:
            raise errors.InvalidTransition("A discard is only reported after redemption.")
        return self

    def revoked(self, now: float, by: Revoker) -> Transfer:
        """The sender, or the patient or family on their phone (`by`), withdrew the transfer
        before redemption."""
        if self.state in TAKEN:
            raise errors.AlreadyRedeemed()
        self.require_live(now)
        return self._replace(state=State.REVOKED, revoked_at=now, revoked_by=by)

    def withdrawn_by_operator(self, now: float) -> Transfer:
        """The relay's operator revoked the transfer (its site was disabled) before redemption;
        `revoked_by` stays empty: neither the patient, the family nor the sender did."""
        if self.state in TAKEN:
            raise errors.AlreadyRedeemed()
        self.require_live(now)
        return self._replace(state=State.REVOKED, revoked_at=now, revoked_by=None)

    def declined(self, now: float, by: Revoker) -> Transfer:
        """The patient or family (`by`) said no on their phone before anyone authorized: a
        revocation by them, which `was_declined` reports. Refused with `InvalidTransition`
        once someone has authorized (they can still cancel: `revoked`) or when `by` is the
        sending site; otherwise refused as `revoked` is."""
        if by not in PHONE_HOLDERS:
            raise errors.InvalidTransition("Only the patient or their family can decline.")
        if self.state in TAKEN:
            raise errors.AlreadyRedeemed()
        self.require_live(now)
        if self.authorized_at is not None:
            raise errors.InvalidTransition(
                "This transfer is already authorized, so it cannot be declined; it can still "
                "be cancelled."
            )
        return self.revoked(now, by)

    def expired(self, now: float) -> Transfer:
        """The sweeper found the transfer past its expiry."""
        if not self.is_due(now):
            raise errors.InvalidTransition("This transfer has not expired.")
        return self._replace(state=State.EXPIRED)

    # -- questions -----------------------------------------------------------------------

    def state_at(self, now: float) -> State:
        """The state as reported at `now`: past `expires_at` a transfer is expired even before
        the sweeper has recorded it."""
        return State.EXPIRED if self.is_due(now) else self.state

    def was_declined(self) -> bool:
        """Did the patient or family decline, that is, revoke before anyone authorized?"""
        return (
            self.state == State.REVOKED
            and self.revoked_by in PHONE_HOLDERS
            and self.authorized_at is None
        )

    def can_revoke(self, now: float) -> bool:
        """Would `revoked(now)` succeed? (What the patient's phone offers.)"""
        return self.state_at(now) in REVOCABLE

    def visible_to(self, site: str) -> bool:
        """May `site` read this transfer's status? The sender always; the recipient only once it
        has redeemed, so a trauma center learns nothing of transfers it has not taken."""
        return site == self.sender or (site == self.recipient and self.state in TAKEN)

    def readable_by(self, site: str, now: float) -> bool:
        """May `site` read the holdings and manifest? The sender always; the recipient while it
        may download (`downloadable_by`)."""
        return site == self.sender or self.downloadable_by(site, now)

    def require_upload(self, now: float) -> None:
        """Raises `InvalidTransition` unless the sender may still upload (`accepts_upload`)."""
        if not self.accepts_upload(now):
            raise errors.InvalidTransition(
                f"This transfer no longer accepts uploads (it is {self.state_at(now).value})."
            )

    def accepts_upload(self, now: float) -> bool:
        return not self.is_due(now) and self.state in (
            State.CREATED,
            State.AWAITING_AUTHORIZATION,
            State.AUTHORIZED,
            State.LOCKED,
            State.REDEEMED,
        )

    def downloadable_by(self, site: str, now: float) -> bool:
        # Checked against expires_at, not is_due: a delivered transfer never falls due, yet the
        # sweeper deletes its sealed objects once expires_at has passed.
        return now < self.expires_at and self.state in TAKEN and site == self.recipient
