"""Redemption: a receiving site proves it holds the code (or the QR capability) and receives the
wrapped data key, once.

Every refusal (unknown, expired, used, revoked, locked, wrong) is the same answer, so a guesser
learns nothing. Only a right proof is told more (for example "not authorized yet", or that the
family cancelled), and a wrong one for a live transfer how many tries are left (`refusals`).

A lost answer must not strand the transfer (the code is spent once the relay commits). So the
receiving site sends a random `redemption_id` it saved before asking; the relay keeps its digest
with the transfer. The same site presenting the same id with a right proof on the redeemed
transfer gets the same success answer again, audited as result "repeated" and counted as no
failure. Without the id, or with another one, a redeemed transfer answers the generic refusal.
Requests are serialized by the store's transaction, so of concurrent attempts with different
ids exactly one redeems; concurrent attempts with the winner's id all get the same success.
"""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

from relay import audit, errors
from relay.api import bodies, refusals
from relay.api.auth import remote, require_site
from relay.appkeys import CONFIG, DECOY_KEY, METADATA
from relay.lifecycle import Authorizer, RedeemOutcome, State
from transfer_codes.codes import LOCATOR_LIMIT
from transfer_codes.keys import proof_matches
from transfer_codes.tokens import is_transfer_id
from transfer_codes.wire import b64encode_text

routes = web.RouteTableDef()

REDEMPTION_ID_BYTES = 32
ANSWERED = frozenset({RedeemOutcome.REDEEMED, RedeemOutcome.REPEATED})


def redemption_digest(redemption_id: bytes) -> bytes:
    """What the relay keeps of a redemption id: enough to recognise it, not to present it."""
    return hashlib.sha256(b"trauma-relay redemption id\x00" + redemption_id).digest()


def _decoy_salt(key: bytes, recipient: str, locator: int) -> bytes:
    """A stable salt for a locator with no transfer, indistinguishable from a real one."""
    return hmac.new(key, f"{recipient}\x00{locator}".encode(), hashlib.sha256).digest()[:16]


def _locator(body: dict[str, object]) -> int:
    return bodies.integer(body, "locator", low=0, high=LOCATOR_LIMIT - 1)


@routes.post("/api/v1/redemptions/salt")
async def salt(request: web.Request) -> web.Response:
    site = await require_site(request, "receiving")
    body = await bodies.json_body(request)
    locator = _locator(body)
    async with request.app[METADATA].transaction() as tx:
        t = await tx.transfer_by_locator(site.name, locator)
        lock = await tx.lock(t.id, "code") if t else None
        kept = None if lock else await refusals.cancelled_salt(tx, site.name, locator)
    value = lock.salt if lock else kept or _decoy_salt(request.app[DECOY_KEY], site.name, locator)
    return web.json_response({"salt": b64encode_text(value)})


@routes.post("/api/v1/redemptions")
async def redeem(request: web.Request) -> web.Response:
    site = await require_site(request, "receiving")
    body = await bodies.json_body(request)
    proof = bodies.b64(body, "proof", min_len=32, max_len=32)
    redemption_id = None
    if "redemption_id" in body:
        redemption_id = bodies.b64(
            body, "redemption_id", min_len=REDEMPTION_ID_BYTES, max_len=REDEMPTION_ID_BYTES
        )
    now = request.app[CONFIG].clock()
    if "transfer_id" in body:
        kind = "capability"
        transfer_id = bodies.text(body, "transfer_id", max_len=64)
        if not is_transfer_id(transfer_id):
            raise errors.CodeNotAccepted()
    else:
        kind = "code"
        locator = _locator(body)
    left = None
    async with request.app[METADATA].transaction() as tx:
        if kind == "capability":
            t = await tx.transfer(transfer_id)
        else:
            t = await tx.transfer_by_locator(site.name, locator)
        if t is None or t.recipient != site.name:
            await audit.record(
                tx,
                now,
                event_id=audit.USER_AUTHENTICATION,
                action="redeem-attempt",
                actor=site.name,
                actor_role="receiving",
                transfer_id=None,
                outcome="failure",
                remote=remote(request),
                via=kind,
            )
            outcome = RedeemOutcome.REJECTED
        else:
            lock = await tx.lock(t.id, kind)
            ok = lock is not None and proof_matches(proof, lock.verifier)
            same = False
            if redemption_id is not None and t.state == State.REDEEMED:
                recorded = await tx.redemption_digest(t.id)
                same = recorded is not None and hmac.compare_digest(
                    recorded, redemption_digest(redemption_id)
                )
            t, outcome = t.redeem_attempted(now, ok, same_redemption=same)
            left = refusals.attempts_left(t, outcome, now)
            await tx.save_transfer(t)
            if outcome == RedeemOutcome.REDEEMED and redemption_id is not None:
                await tx.set_redemption_digest(t.id, redemption_digest(redemption_id))
            await audit.record(
                tx,
                now,
                event_id=audit.USER_AUTHENTICATION,
                action="redeem-attempt",
                actor=site.name,
                actor_role="receiving",
                transfer_id=t.id,
                outcome="success" if outcome in ANSWERED else "failure",
                remote=remote(request),
                via=kind,
                result=outcome.value,
            )
            if outcome == RedeemOutcome.LOCKED_NOW:
                await audit.record(
                    tx,
                    now,
                    event_id=audit.SECURITY_ALERT,
                    action="transfer-locked",
                    actor=site.name,
                    actor_role="receiving",
                    transfer_id=t.id,
                    outcome="failure",
                    remote=remote(request),
                )
            if outcome in ANSWERED and lock is not None:
                sender = await tx.site(t.sender)
                return web.json_response(
                    {
                        "transfer_id": t.id,
                        "wrapped_key": b64encode_text(lock.wrapped_key),
                        "sender": {
                            "name": t.sender,
                            "display_name": sender.display_name if sender else t.sender,
                        },
                        "expires_at": t.expires_at,
                        "break_glass": t.authorized_by == Authorizer.BREAK_GLASS,
                        "manifest_closed": await tx.manifest_closed(t.id),
                    }
                )
        key = transfer_id if kind == "capability" else locator
        cancelled = outcome == RedeemOutcome.REJECTED and await refusals.cancelled_by_family(
            tx, site.name, kind, key, proof
        )
    if outcome == RedeemOutcome.NOT_YET_AUTHORIZED:
        raise errors.AwaitingAuthorization()
    if cancelled:
        raise errors.CancelledByFamily()
    if left is not None:
        return refusals.not_accepted(left)
    raise errors.CodeNotAccepted()
