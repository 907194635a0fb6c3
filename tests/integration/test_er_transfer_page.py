"""The ER console's transfer page over real HTTP (in-process console and relay): while the relay
is out of reach, the page still names the trauma center as staff know it."""

from __future__ import annotations

import asyncio
import re
from html import unescape
from pathlib import Path

import aiohttp
import pytest
from er_pages import er_console, spooled_study
from peers.ports import free_port
from relay_harness import RECEIVER, register_sites, running_relay
from test_console_app import get, post

from site_agent.credential import CREDENTIAL_ENV

pytestmark = pytest.mark.asyncio

SHOWN = "County Level I Trauma Center"  # as the relay's site registry shows RECEIVER


async def _transfer_page(client: aiohttp.ClientSession, url: str) -> tuple[str, str]:
    """The transfer's address, once the job's page sends there, and its page."""
    for _ in range(300):
        status, location, page = await get(client, url)
        if status == 303 and location.startswith("/transfers/"):
            base = url.split("/jobs/")[0]
            _, _, page = await get(client, base + location)
            return base + location, page
        await asyncio.sleep(0.1)
    raise AssertionError(page)


def _heading(page: str) -> str:
    (heading,) = re.findall(r"<h1>(.*?)</h1>", page)
    return unescape(heading)


async def test_the_trauma_center_keeps_its_name_while_the_relay_is_out_of_reach(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relay names the trauma center on the transfer's page; once it is out of reach, the
    page (and the list of transfers) still does, not by its name in the relay's registry
    ("county-trauma"), which a nurse does not know."""
    spool = await spooled_study(tmp_path)
    sending, receiving = await register_sites(tmp_path / "relay")
    monkeypatch.setenv(CREDENTIAL_ENV, sending)
    port = free_port()
    relay_url = f"http://127.0.0.1:{port}"
    async with er_console(tmp_path, f"spool.folder={spool}", f"relay.url={relay_url}") as er:
        async with running_relay(tmp_path / "relay", port=port, registered=(sending, receiving)):
            study, _ = await er.the_study()
            form = {"csrf_token": er.token, "recipient": RECEIVER, "acknowledge": "yes"}
            status, job, _ = await post(er.client, f"{er.console.url}{study}/send", form)
            assert (status, job[:6]) == (303, "/jobs/")
            transfer, page = await _transfer_page(er.client, er.console.url + job)
            assert _heading(page) == f"Transfer to {SHOWN}"
        # The relay is down now.
        _, _, page = await get(er.client, transfer)
        _, _, listed = await get(er.client, f"{er.console.url}/transfers")
    assert "The status is not known just now" in page
    assert _heading(page) == f"Transfer to {SHOWN}"
    assert f"<td>{SHOWN}</td>" in unescape(listed)
    assert f"<td>{RECEIVER}</td>" not in listed
