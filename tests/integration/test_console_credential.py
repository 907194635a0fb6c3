"""An agent run from its settings without a relay credential says which setting to fix (the key
as its settings file writes it, and its environment variable), not the command line's
--credential-file: on the ER console's pages (an error page, a study's list of trauma centers)
and on the trauma console's home page (real HTTP, in-process console)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from console_harness import running_console
from inbox_harness import kept_inbox
from test_console_app import browser_like, get, signed_in

from sending_site.synthetic import make_ct_study
from site_agent.credential import CREDENTIAL_ENV

pytestmark = pytest.mark.asyncio
SETTING = "credential_file in the [relay] section"


@pytest.fixture(autouse=True)
def _no_credential_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CREDENTIAL_ENV, raising=False)


async def test_the_er_console_names_the_agents_setting(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, browser_like() as client:
        await signed_in(client, console)
        status, _, page = await get(client, f"{console.url}/transfers")
    assert status == 500
    assert "This agent has no site credential" in page
    assert SETTING in page
    assert "TRAUMA_RELAY_SENDER_RELAY_CREDENTIAL_FILE" in page
    assert "--credential-file" not in page


async def test_the_er_study_page_names_the_agents_setting(tmp_path: Path) -> None:
    """A study's page lists the relay's trauma centers to choose from, or says why it cannot."""
    spool = tmp_path / "spool"
    (image,) = make_ct_study(tmp_path / "study", 1)
    async with kept_inbox(spool) as (_, _, keeper):
        kept, reason = await asyncio.to_thread(keeper.keep_file, image.read_bytes(), "PACS")
        assert kept == 0, reason
    async with (
        running_console(tmp_path, "sender", f"spool.folder={spool}") as console,
        browser_like() as client,
    ):
        await signed_in(client, console)
        _, _, home = await get(client, f"{console.url}/")
        (study,) = re.findall(r'href="(/studies/\d+)"', home)
        status, _, page = await get(client, console.url + study)
    assert status == 200
    assert "This agent has no site credential" in page
    assert SETTING in page
    assert "--credential-file" not in page


async def test_the_trauma_console_names_the_agents_setting(tmp_path: Path) -> None:
    async with running_console(tmp_path, "receiver") as console, browser_like() as client:
        await signed_in(client, console)
        status, _, home = await get(client, f"{console.url}/")
    assert status == 200
    assert "This agent has no site credential" in home
    assert SETTING in home
    assert "TRAUMA_RELAY_RECEIVER_RELAY_CREDENTIAL_FILE" in home
    assert "--credential-file" not in home
