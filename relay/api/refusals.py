"""What a refused redemption may say beyond "not accepted", and to whom.

Kept apart from the redemption handlers so that they only call it. Two things, both only where
they cannot help a guesser:

- `attempts_left`: after a wrong proof for a live transfer that the locator (or QR transfer id)
  found for this trauma center, how many more wrong proofs it takes before the transfer locks.
  An unknown locator, or a transfer that is spent, expired, revoked or locked, gets nothing.
- `cancelled_by_family`: a right proof for a transfer the patient or family cancelled on their
  phone (its salt and verifier are kept until it would have expired; see schema 004) is told
  so, instead of "call the sending hospital". Any other proof learns nothing.
"""

from __future__ import annotations

from aiohttp import web

from relay import errors
from relay.api.problems import problem
from relay.lifecycle import MAX_FAILED_ATTEMPTS, RedeemOutcome, State, Transfer
from relay.storage.interface import MetadataTransaction
from relay.storage.models import CancelledLock
from transfer_codes.keys import proof_matches

LIVE = frozenset({State.AWAITING_AUTHORIZATION, State.AUTHORIZED})


def attempts_left(t: Transfer, outcome: RedeemOutcome, now: float) -> int | None:
    """Wrong proofs `t` takes before it locks, after this attempt; None unless the attempt
    was a wrong proof for a live transfer (then it counted) or the one that locked it."""
    if outcome == RedeemOutcome.LOCKED_NOW:
        return 0
    if outcome != RedeemOutcome.REJECTED or t.state not in LIVE or t.is_due(now):
        return None
    return max(MAX_FAILED_ATTEMPTS - t.failed_attempts, 0)


def not_accepted(left: int) -> web.Response:
    """The code-not-accepted problem, with `attempts_left` and a sentence that says it."""
    if left == 0:
        detail = (
            "That code was not accepted, and that was the last try: the transfer is now "
            "locked. Call the sending hospital, which can issue a new code."
        )
    else:
        tries = "1 more try" if left == 1 else f"{left} more tries"
        detail = (
            "That code was not accepted. Check it against the transfer sheet; "
            f"{tries} before the transfer locks. If it still fails, call the sending "
            "hospital, which can issue a new code."
        )
    refusal = errors.CodeNotAccepted(detail)
    return problem(refusal.status, refusal.code, refusal.detail, attempts_left=left)


async def cancelled_salt(tx: MetadataTransaction, recipient: str, locator: int) -> bytes | None:
    """The salt of the code of a cancelled transfer with this locator, so the right code
    yields the right proof; None if there is none."""
    lock = await tx.cancelled_lock(recipient, "code", locator)
    return lock.salt if lock else None


async def cancelled_by_family(
    tx: MetadataTransaction, recipient: str, kind: str, key: int | str, proof: bytes
) -> bool:
    """True if `proof` is the right one for a transfer to `recipient` that the patient or
    family cancelled (`key`: the locator for a code, the transfer id for a QR)."""
    lock: CancelledLock | None = await tx.cancelled_lock(recipient, kind, key)
    return lock is not None and proof_matches(proof, lock.verifier)
