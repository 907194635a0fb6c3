"""The ER console's study page over real HTTP (in-process console and relay): what staff chose
is kept when a send is refused."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from console_harness import running_console
from inbox_harness import kept_inbox
from relay_harness import RECEIVER, running_relay
from test_console_app import browser_like, get, post, signed_in

from sending_site.synthetic import make_ct_study
from site_agent.credential import CREDENTIAL_ENV

pytestmark = pytest.mark.asyncio


async def _spooled_study(tmp_path: Path) -> Path:
    """A spool holding one received CT image: the study the console lists."""
    spool = tmp_path / "spool"
    (image,) = make_ct_study(tmp_path / "study", 1)
    async with kept_inbox(spool) as (_, _, keeper):
        kept, reason = await asyncio.to_thread(keeper.keep_file, image.read_bytes(), "PACS")
        assert kept == 0, reason
    return spool


def _chosen(page: str) -> list[str]:
    """The trauma centers the page's send form has selected."""
    return re.findall(r'<option value="([^"]*)" selected>', page)


async def test_a_refused_send_keeps_the_chosen_trauma_center(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The nurse picks the trauma center but forgets to tick that the warnings were read: the
    page says so, and the trauma center stays chosen (nothing sent, nothing to pick again)."""
    spool = await _spooled_study(tmp_path)
    async with running_relay(tmp_path / "relay") as relay:
        monkeypatch.setenv(CREDENTIAL_ENV, relay.sender_credential)
        async with (
            running_console(
                tmp_path, "sender", f"spool.folder={spool}", f"relay.url={relay.url}"
            ) as console,
            browser_like() as client,
        ):
            token = await signed_in(client, console)
            _, _, home = await get(client, f"{console.url}/")
            (study,) = re.findall(r'href="(/studies/\d+)"', home)
            _, _, page = await get(client, console.url + study)
            assert _chosen(page) == []
            form = {"csrf_token": token, "recipient": RECEIVER}
            status, _, refused = await post(client, f"{console.url}{study}/send", form)
    assert status == 400
    assert "Tick the box" in refused
    assert _chosen(refused) == [RECEIVER]
