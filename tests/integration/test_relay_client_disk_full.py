"""A relay whose disk is down to its reserve (`/healthz` 503 `disk-full`) is still up for the
sites: it serves what it holds (a trauma center redeems and downloads), and refuses new
transfers and uploads itself, in its own words. The sites' start-up check (`health`) must not
stop them first with a bare "HTTP 503"."""

from __future__ import annotations

from pathlib import Path

import pytest
from relay_harness import RECEIVER, running_relay

from site_agent.client import RelayClient
from site_agent.errors import RelayRefused


@pytest.mark.asyncio
async def test_a_relay_whose_disk_is_full_is_up_and_says_why_it_takes_nothing_new(
    tmp_path: Path,
) -> None:
    # a reserve larger than any disk here: as if the relay's disk were full
    async with running_relay(tmp_path / "relay", disk_reserve_bytes=2**62) as relay:
        async with RelayClient(relay.url, relay.receiver_credential) as trauma_center:
            await trauma_center.health()  # redeem goes on to what the relay holds
        async with RelayClient(relay.url, relay.sender_credential) as er:
            await er.health()
            with pytest.raises(RelayRefused) as refused:
                await er.create_transfer(RECEIVER, None)
    assert refused.value.status == 507
    assert "The relay's disk is full" in str(refused.value)
