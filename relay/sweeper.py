"""Expiry and retention: transfers past their time, revoked ones, and delivered ones once the
configured grace after the receipt has passed lose their sealed objects, wrapped keys, verifiers
and manifest. The row stays, without secrets, so the sender can still see what happened.
The salts and verifiers kept of a transfer the family cancelled go once it would have expired.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from relay import audit
from relay.config import RelayConfig
from relay.lifecycle import State, Transfer
from relay.storage.interface import MetadataStore, ObjectStore

log = logging.getLogger("relay.sweeper")


async def sweep_once(config: RelayConfig, metadata: MetadataStore, objects: ObjectStore) -> int:
    """Purge everything due now; returns how many transfers were purged. With several relay
    instances on one store, one sweeps at a time and the others skip this round."""
    async with metadata.exclusive() as alone:
        return await _sweep(config, metadata, objects) if alone else 0


async def _sweep(config: RelayConfig, metadata: MetadataStore, objects: ObjectStore) -> int:
    now = config.clock()
    async with metadata.transaction() as tx:
        await tx.forget_cancelled_locks(now)
        due = await tx.due_for_purge(now, now - config.delivered_grace)
    for listed in due:
        # Files first: if we crash after this, the row is still due and the next sweep finishes.
        await objects.delete_transfer(listed.id)
        async with metadata.transaction() as tx:
            # Read again, locked: the row may have changed while the files went (a receipt
            # after expires_at makes a redeemed transfer delivered). Decide from it as it is
            # now, never write back the copy listed before; the rest is purged all the same,
            # its files being gone.
            t = await tx.transfer(listed.id)
            if t is None:
                continue
            if t.state != State.REVOKED and t.is_due(now):
                await tx.save_transfer(t.expired(now))
                await audit.record(
                    tx,
                    now,
                    action="transfer-expired",
                    actor="relay",
                    actor_role="relay",
                    transfer_id=t.id,
                    state=t.state.value,  # what it was when its time ran out
                )
            await tx.delete_locks(t.id)
            await tx.delete_manifest(t.id)
            await tx.mark_purged(t.id)
            await audit.record(
                tx,
                now,
                action="transfer-purged",
                actor="relay",
                actor_role="relay",
                transfer_id=t.id,
                reason=_why(t),
            )
        log.info("purged transfer %s", t.id, extra={"transfer_id": t.id})
    return len(due)


def _why(t: Transfer) -> str:
    if t.state in (State.REVOKED, State.DELIVERED):
        return t.state.value
    return "expired"


async def run(
    config: RelayConfig,
    metadata: MetadataStore,
    objects: ObjectStore,
    swept: Callable[[int], None] = lambda purged: None,
) -> None:
    """Sweep every `sweep_interval`; `swept(purged)` after each sweep."""
    while True:
        try:
            swept(await sweep_once(config, metadata, objects))
        except Exception:
            log.exception("expiry sweep failed; will try again")
        await asyncio.sleep(config.sweep_interval)
