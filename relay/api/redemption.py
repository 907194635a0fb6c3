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
The business is in `relay.desk.receiving`; here requests are parsed and answered.
"""

from __future__ import annotations

from aiohttp import web

from relay import errors
from relay.api import bodies, guessing, refusals
from relay.api.auth import at_desk, require_site
from relay.appkeys import DECOY_KEY
from relay.desk import receiving
from relay.lifecycle import RedeemOutcome
from relay.metrics import METRICS
from transfer_codes import wire
from transfer_codes.codes import LOCATOR_LIMIT
from transfer_codes.tokens import is_transfer_id
from transfer_codes.wire import b64encode_text

routes = web.RouteTableDef()

REDEMPTION_ID_BYTES = 32
# What a wrong proof gets (a right one for a transfer not yet authorized is no guess).
GUESS_FAILURES = frozenset({RedeemOutcome.REJECTED, RedeemOutcome.LOCKED_NOW})


def _locator(body: dict[str, object]) -> int:
    return bodies.integer(body, "locator", low=0, high=LOCATOR_LIMIT - 1)


@routes.post(wire.REDEMPTION_SALT)
async def salt(request: web.Request) -> web.Response:
    site = await require_site(request, "receiving")
    body = await bodies.json_body(request)
    locator = _locator(body)
    async with at_desk(request, site) as d:
        value = await receiving.salt(d, locator, request.app[DECOY_KEY])
    return web.json_response({"salt": b64encode_text(value)})


@routes.post(wire.REDEMPTIONS)
async def redeem(request: web.Request) -> web.Response:
    site = await require_site(request, "receiving")
    async with guessing.attempt(request, site):
        body = await bodies.json_body(request)
        proof = bodies.b64(body, "proof", min_len=32, max_len=32)
        redemption_id = None
        if "redemption_id" in body:
            redemption_id = bodies.b64(
                body, "redemption_id", min_len=REDEMPTION_ID_BYTES, max_len=REDEMPTION_ID_BYTES
            )
        if "transfer_id" in body:
            transfer_id = bodies.text(body, "transfer_id", max_len=64)
            if not is_transfer_id(transfer_id):
                raise errors.CodeNotAccepted()
            async with at_desk(request, site) as d:
                result = await receiving.redeem_by_capability(d, transfer_id, proof, redemption_id)
        else:
            locator = _locator(body)
            async with at_desk(request, site) as d:
                result = await receiving.redeem_by_locator(d, locator, proof, redemption_id)
        if not isinstance(result, receiving.Redemption):
            if result.outcome in GUESS_FAILURES and not result.cancelled:
                request.app[METRICS].redemption_failures.inc()
                await guessing.failed(request, site)
            # Only now, after the visit committed: wrong proofs are counted and audited.
            if result.attempts_left is not None and not result.cancelled:
                return refusals.not_accepted(result.attempts_left)
            raise receiving.refusal(result)
    t = result.transfer
    return web.json_response(
        {
            "transfer_id": t.id,
            "wrapped_key": b64encode_text(result.wrapped_key),
            "sender": {"name": t.sender, "display_name": result.sender_display_name},
            "expires_at": t.expires_at,
            "break_glass": result.break_glass,
            "consent_from_sending_site": result.consent_from_sending_site,
            "manifest_closed": result.manifest_closed,
        }
    )
