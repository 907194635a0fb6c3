"""What a push checks before anything is uploaded: that the relay answers (retrying for a
while, each wait announced), that `--to` names one of its trauma centers, and what the files
hold. The command line shows the result and asks staff to confirm; only then does `push` run.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from pathlib import Path

from sending_site import collect
from sending_site.collect import Collection
from sending_site.destinations import Destination, resolve
from site_agent import retry
from site_agent.client import RelayClient

RETRY_FOR = 120.0  # seconds of waiting for an unreachable relay before giving up


@dataclass(frozen=True)
class Prepared:
    destination: Destination
    collection: Collection


async def directory(
    client: RelayClient, retry_for: float = RETRY_FOR, on_wait: retry.OnWait | None = None
) -> tuple[list[Destination], list[Destination]]:
    """The relay's receiving sites, and those of them its operator has disabled; waits
    (`retry.backoff(retry_for)`) while it cannot be reached, then `RelayUnreachable` stands."""
    listing = client.directory_listing
    enabled, disabled = await retry.retrying(listing, on_wait, retry.backoff(retry_for))
    return _destinations(enabled), _destinations(disabled)


def _destinations(sites: list[dict[str, str]]) -> list[Destination]:
    return [Destination(s["name"], s.get("display_name") or "") for s in sites]


async def destinations(
    client: RelayClient, retry_for: float = RETRY_FOR, on_wait: retry.OnWait | None = None
) -> list[Destination]:
    """The relay's receiving sites that can be sent to (`directory`'s first)."""
    return (await directory(client, retry_for, on_wait))[0]


async def prepare(
    client: RelayClient,
    recipient: str,
    paths: list[Path],
    *,
    skip_damaged: bool = False,
    retry_for: float = RETRY_FOR,
    on_wait: retry.OnWait | None = None,
) -> Prepared:
    """The destination `recipient` names, then the collection of `paths`. Raises what
    `destinations.resolve` and `collect.collect` raise, and `RelayUnreachable`."""
    destination = resolve(recipient, *await directory(client, retry_for, on_wait))
    found = await asyncio.to_thread(
        functools.partial(collect.collect, paths, skip_damaged=skip_damaged)
    )
    return Prepared(destination, found)
