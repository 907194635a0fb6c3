"""The ER console as the integration tests open it over real HTTP: the sending agent's console
in-process (`running_console`), a browser-like client with the nurse signed in, and the one
study its spool holds."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from console_harness import Console, running_console
from inbox_harness import kept_inbox
from test_console_app import browser_like, get, signed_in

from sending_site.synthetic import make_ct_study


@dataclass(frozen=True)
class Er:
    console: Console
    client: aiohttp.ClientSession
    token: str  # the signed-in session's CSRF token

    async def the_study(self) -> tuple[str, str]:
        """The address of the one study the home page lists, and the home page."""
        _, _, home = await get(self.client, f"{self.console.url}/")
        (study,) = re.findall(r'href="(/studies/\d+)"', home)
        return study, home


@asynccontextmanager
async def er_console(tmp_path: Path, *assignments: str) -> AsyncIterator[Er]:
    """The sending agent's console with `assignments` (`spool.folder=...`, `relay.url=...`),
    the nurse signed in."""
    async with (
        running_console(tmp_path, "sender", *assignments) as console,
        browser_like() as client,
    ):
        yield Er(console, client, await signed_in(client, console))


async def spooled_study(tmp_path: Path) -> Path:
    """A spool holding one received CT image: the study the console lists."""
    spool = tmp_path / "spool"
    (image,) = make_ct_study(tmp_path / "study", 1)
    async with kept_inbox(spool) as (_, _, keeper):
        kept, reason = await asyncio.to_thread(keeper.keep_file, image.read_bytes(), "PACS")
        assert kept == 0, reason
    return spool
