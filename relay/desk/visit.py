"""One visit to the desk: a transaction, who is asking, and the time, shared by every step."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from relay import audit, errors
from relay.lifecycle import Transfer
from relay.storage.interface import MetadataStore, MetadataTransaction

UNKNOWN = "unknown"  # the actor of a request with no known site or phone link


@dataclass(frozen=True)
class Caller:
    """Who asks: a site's `name` and `role`, or `UNKNOWN` for the patient's phone (whose actor
    is known only once its link leads to a transfer); `remote` is the peer address."""

    name: str
    role: str
    remote: str


@dataclass(frozen=True)
class Desk:
    """The transaction a request runs in, its caller, and `now` (seconds since the epoch)."""

    tx: MetadataTransaction
    caller: Caller
    now: float

    async def record(
        self,
        action: str,
        transfer_id: str | None,
        *,
        outcome: str = "success",
        actor: str | None = None,
        **detail: object,
    ) -> None:
        """Audit `action` by the caller, or by `actor` (as name and role: a phone's patient or
        family), in this transaction: it commits with the change it describes or not at all."""
        await audit.record(
            self.tx,
            self.now,
            action=action,
            actor=actor or self.caller.name,
            actor_role=actor or self.caller.role,
            transfer_id=transfer_id,
            outcome=outcome,
            remote=self.caller.remote,
            **detail,
        )

    async def saved(self, t: Transfer, action: str, **detail: Any) -> Transfer:
        """Persist `t` as the lifecycle returned it and audit `action`; returns `t`."""
        await self.tx.save_transfer(t)
        await self.record(action, t.id, **detail)
        return t

    async def _transfer(self, transfer_id: str, may_see: Callable[[Transfer], bool]) -> Transfer:
        t = await self.tx.transfer(transfer_id)
        if t is None or not may_see(t):
            raise errors.NotFound()  # the same answer as for a transfer that does not exist
        return t

    async def sent(self, transfer_id: str) -> Transfer:
        """The caller's own transfer as its sender, else `NotFound`."""
        return await self._transfer(transfer_id, lambda t: t.sender == self.caller.name)

    async def received(self, transfer_id: str) -> Transfer:
        """The caller's transfer as its recipient, else `NotFound`."""
        return await self._transfer(transfer_id, lambda t: t.recipient == self.caller.name)

    async def visible(self, transfer_id: str) -> Transfer:
        """A transfer whose status the caller may read (`Transfer.visible_to`), else `NotFound`."""
        return await self._transfer(transfer_id, lambda t: t.visible_to(self.caller.name))

    async def readable(self, transfer_id: str) -> Transfer:
        """A transfer whose holdings and manifest the caller may read (`Transfer.readable_by`),
        else `NotFound`."""
        return await self._transfer(
            transfer_id, lambda t: t.readable_by(self.caller.name, self.now)
        )


@asynccontextmanager
async def visit(store: MetadataStore, caller: Caller, now: float) -> AsyncIterator[Desk]:
    """A `Desk` in a fresh transaction: committed if the block ends normally, else rolled back."""
    async with store.transaction() as tx:
        yield Desk(tx, caller, now)
