"""A relay stopping for a restart answers a request on a kept-alive connection 503 `stopping`
(with Retry-After) before doing anything: the sites take that as the relay briefly out of
reach, wait and try again (`site_agent.retry`), as for a lost connection, instead of ending
a push or a redeem with "The relay is stopping for a restart"."""

from __future__ import annotations

from pathlib import Path

import pytest
from relay_harness import running_relay

from relay.serving import IN_FLIGHT
from site_agent.client import RelayClient
from site_agent.errors import RelayUnreachable
from site_agent.retry import retrying


@pytest.mark.asyncio
async def test_a_relay_stopping_for_a_restart_is_waited_for_and_tried_again(
    tmp_path: Path,
) -> None:
    async with running_relay(tmp_path / "relay") as relay:
        assert relay.app is not None
        draining = relay.app[IN_FLIGHT]
        waits: list[str] = []

        def restarted(delay: float, e: RelayUnreachable) -> None:
            waits.append(e.reason)
            draining.draining = False  # the new relay process answers the next try

        async with RelayClient(relay.url, relay.sender_credential) as er:
            draining.draining = True
            sites = await retrying(er.directory, on_wait=restarted, waits=[0.0])
    assert waits == ["the relay is stopping for a restart"]
    assert [s["name"] for s in sites] == ["county-trauma"]
