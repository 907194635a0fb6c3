"""Fixtures for the browser tests (helpers live in `phone_harness`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from phone_harness import CHROMIUM_ARGS, require_chromium
from playwright.async_api import Browser, async_playwright, expect

# `expect(...)` waits for its condition up to this long (Playwright's default is 5 s): a page on a
# loaded 2-core machine, agents and PACS beside it, may take longer to reach what is expected.
# Passing assertions return as soon as their condition holds; only a failure waits it out.
expect.set_options(timeout=30_000)


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = require_chromium()
    async with async_playwright() as p:
        launched = await p.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()
