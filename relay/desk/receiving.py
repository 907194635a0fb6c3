"""The trauma center's business: the salt for a code, redemption, and the delivery receipt.

Every refusal of a redemption (unknown, expired, used, revoked, locked, wrong) is the same
answer, so a guesser learns nothing; see `relay.api.redemption` for the repeat of a lost answer.
Two things are said beyond it, only where they cannot help a guesser:

- `attempts_left`: after a wrong proof for a live transfer that the locator (or QR transfer id)
  found for this trauma center, how many more wrong proofs it takes before the transfer locks.
  An unknown locator, or a transfer that is spent, expired, revoked or locked, gets nothing.
- `cancelled`: a right proof for a transfer the patient or family cancelled on their phone (its
  salt and verifier are kept until it would have expired; see schema 005) is told so, instead
  of "call the sending hospital". Any other proof learns nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

from relay import errors
from relay.desk.visit import Desk
from relay.lifecycle import MAX_FAILED_ATTEMPTS, Authorizer, RedeemOutcome, State, Transfer
from transfer_codes.keys import proof_matches
from transfer_codes.wire import DISCARDED

ANSWERED = frozenset({RedeemOutcome.REDEEMED, RedeemOutcome.REPEATED})
LIVE = frozenset({State.AWAITING_AUTHORIZATION, State.AUTHORIZED})


def redemption_digest(redemption_id: bytes) -> bytes:
    """What the relay keeps of a redemption id: enough to recognise it, not to present it."""
    return hashlib.sha256(b"trauma-relay redemption id\x00" + redemption_id).digest()


def _decoy_salt(key: bytes, recipient: str, locator: int) -> bytes:
    """A stable salt for a locator with no transfer, indistinguishable from a real one."""
    return hmac.new(key, f"{recipient}\x00{locator}".encode(), hashlib.sha256).digest()[:16]


async def salt(d: Desk, locator: int, decoy_key: bytes) -> bytes:
    """The salt of the code at `locator` for the caller, or a decoy as stable as a real one."""
    t = await d.tx.transfer_by_locator(d.caller.name, locator)
    lock = await d.tx.lock(t.id, "code") if t else None
    if lock is not None:
        return lock.salt
    # A cancelled transfer's code keeps its salt, so the right code yields the right proof.
    kept = await d.tx.cancelled_lock(d.caller.name, "code", locator)
    return kept.salt if kept else _decoy_salt(decoy_key, d.caller.name, locator)


def attempts_left(t: Transfer, outcome: RedeemOutcome, now: float) -> int | None:
    """Wrong proofs `t` takes before it locks, after this attempt; None unless the attempt
    was a wrong proof for a live transfer (then it counted) or the one that locked it."""
    if outcome == RedeemOutcome.LOCKED_NOW:
        return 0
    if outcome != RedeemOutcome.REJECTED or t.state not in LIVE or t.is_due(now):
        return None
    return max(MAX_FAILED_ATTEMPTS - t.failed_attempts, 0)


@dataclass(frozen=True)
class Refused:
    """A refused redemption: its outcome, and what the refusal may say beyond "not accepted"."""

    outcome: RedeemOutcome
    attempts_left: int | None = None
    cancelled: bool = False  # a right proof for a transfer the patient or family cancelled


@dataclass(frozen=True)
class Redemption:
    """A granted redemption: the wrapped key and what the trauma center is shown about it."""

    transfer: Transfer
    wrapped_key: bytes
    sender_display_name: str
    consent_from_sending_site: bool  # the patient's authorization came from the sender's address
    break_glass: bool
    manifest_closed: bool


async def _same_redemption(d: Desk, t: Transfer, redemption_id: bytes | None) -> bool:
    if redemption_id is None or t.state != State.REDEEMED:
        return False
    recorded = await d.tx.redemption_digest(t.id)
    return recorded is not None and hmac.compare_digest(recorded, redemption_digest(redemption_id))


async def _cancelled(d: Desk, via: str, key: int | str, proof: bytes) -> bool:
    lock = await d.tx.cancelled_lock(d.caller.name, via, key)
    return lock is not None and proof_matches(proof, lock.verifier)


async def redeem(
    d: Desk,
    t: Transfer | None,
    via: str,
    key: int | str,
    proof: bytes,
    redemption_id: bytes | None,
) -> Redemption | Refused:
    """The caller presents `proof` for `t` (found by `key`, the locator of a code or the
    transfer id of a capability, `via`). Returns the `Redemption`, or the `Refused` for
    `refusal` once this visit has committed (wrong proofs count, so they must be kept)."""
    if t is None or t.recipient != d.caller.name:
        await d.record("redeem-attempt", None, outcome="failure", via=via)
        return Refused(RedeemOutcome.REJECTED, cancelled=await _cancelled(d, via, key, proof))
    lock = await d.tx.lock(t.id, via)
    ok = lock is not None and proof_matches(proof, lock.verifier)
    same = await _same_redemption(d, t, redemption_id)
    t, outcome = t.redeem_attempted(d.now, ok, same_redemption=same)
    await d.tx.save_transfer(t)
    if outcome == RedeemOutcome.REDEEMED and redemption_id is not None:
        await d.tx.set_redemption_digest(t.id, redemption_digest(redemption_id))
    await d.record(
        "redeem-attempt",
        t.id,
        outcome="success" if outcome in ANSWERED else "failure",
        via=via,
        result=outcome.value,
    )
    if outcome == RedeemOutcome.LOCKED_NOW:
        await d.record("transfer-locked", t.id, outcome="failure")
    if outcome not in ANSWERED or lock is None:
        cancelled = outcome == RedeemOutcome.REJECTED and await _cancelled(d, via, key, proof)
        return Refused(outcome, attempts_left(t, outcome, d.now), cancelled)
    sender = await d.tx.site(t.sender)
    return Redemption(
        transfer=t,
        wrapped_key=lock.wrapped_key,
        sender_display_name=sender.display_name if sender else t.sender,
        break_glass=t.authorized_by == Authorizer.BREAK_GLASS,
        consent_from_sending_site=await d.tx.consent_from_sender(t.id),
        manifest_closed=await d.tx.manifest_closed(t.id),
    )


async def redeem_by_locator(
    d: Desk, locator: int, proof: bytes, redemption_id: bytes | None
) -> Redemption | Refused:
    """`redeem` with the code: the locator names the transfer among the caller's."""
    t = await d.tx.transfer_by_locator(d.caller.name, locator)
    return await redeem(d, t, "code", locator, proof, redemption_id)


async def redeem_by_capability(
    d: Desk, transfer_id: str, proof: bytes, redemption_id: bytes | None
) -> Redemption | Refused:
    """`redeem` with the QR capability, which names the transfer."""
    t = await d.tx.transfer(transfer_id)
    return await redeem(d, t, "capability", transfer_id, proof, redemption_id)


def refusal(refused: Refused) -> errors.RelayError:
    """What a refused redemption answers: only a right proof learns "not yet authorized" or
    "cancelled by the family"; `attempts_left` is added by the caller (`relay.api.refusals`)."""
    if refused.outcome == RedeemOutcome.NOT_YET_AUTHORIZED:
        return errors.AwaitingAuthorization()
    if refused.cancelled:
        return errors.CancelledByFamily()
    return errors.CodeNotAccepted()


async def receipt(d: Desk, transfer_id: str, document: dict[str, object]) -> Transfer:
    """The caller reports what it stored (counts only: the relay keeps no PHI); `document` gets
    its `received_at`. A review copy (`"destination": "review"`: a held study saved for a person
    to check before it goes into the PACS) is recorded but leaves the transfer redeemed."""
    destination = document["destination"]
    taken = await d.received(transfer_id)
    if destination == "review":
        t, action = taken.review_copy_kept(d.now), "review-copy-receipt"
    elif destination == DISCARDED:
        t, action = taken.discard_reported(d.now), "discard-receipt"
    else:
        t, action = taken.receipt_received(d.now), "delivery-receipt"
    document["received_at"] = d.now
    await d.tx.set_receipt(t.id, json.dumps(document))
    return await d.saved(
        t, action, instances=document["instances"], destination=document["destination"]
    )
