"""The `ctx` fixture: a relay on port 0 with a fake clock, and an HTTP session to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest_asyncio
from relay_harness import FakeClock, running_relay

from relay_api.plumbing import Ctx


@pytest_asyncio.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[Ctx]:
    clock = FakeClock()
    async with (
        running_relay(tmp_path / "relay", clock=clock) as relay,
        aiohttp.ClientSession() as http,
    ):
        yield Ctx(relay, clock, http)
