"""The ER console's study page over real HTTP (in-process console and relay): what staff chose
is kept when a send is refused, and a relay out of reach is said in the console's words."""

from __future__ import annotations

import asyncio
import re
from html import unescape
from pathlib import Path

import aiohttp
import pytest
from er_pages import er_console, spooled_study
from relay_harness import RECEIVER, running_relay
from test_console_app import get, post

from relay.sites import add_site, disable_site
from site_agent.credential import CREDENTIAL_ENV

pytestmark = pytest.mark.asyncio


def _chosen(page: str) -> list[str]:
    """The trauma centers the page's send form has selected."""
    return re.findall(r'<option value="([^"]*)" selected>', page)


async def test_a_refused_send_keeps_the_chosen_trauma_center(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The nurse picks the trauma center but forgets to tick that the warnings were read: the
    page says so, and the trauma center stays chosen (nothing sent, nothing to pick again)."""
    spool = await spooled_study(tmp_path)
    async with running_relay(tmp_path / "relay") as relay:
        monkeypatch.setenv(CREDENTIAL_ENV, relay.sender_credential)
        async with er_console(tmp_path, f"spool.folder={spool}", f"relay.url={relay.url}") as er:
            study, _ = await er.the_study()
            _, _, page = await get(er.client, er.console.url + study)
            assert _chosen(page) == []
            form = {"csrf_token": er.token, "recipient": RECEIVER}
            status, _, refused = await post(er.client, f"{er.console.url}{study}/send", form)
    assert status == 400
    assert "Tick the box" in refused
    assert _chosen(refused) == [RECEIVER]


async def test_a_send_to_another_trauma_center_while_one_runs_is_not_taken_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The study is being sent to County (its push follows the study until no image has come
    for the stable age); a send of it to another trauma center (a second tab, the back button)
    is not quietly taken for the one under way: the page says where it is going, and that
    nothing went to the one chosen."""
    spool = await spooled_study(tmp_path)
    async with running_relay(tmp_path / "relay") as relay:
        await add_site(relay.data_dir, "mercy-trauma", "receiving", "Mercy Trauma Center")
        monkeypatch.setenv(CREDENTIAL_ENV, relay.sender_credential)
        async with er_console(tmp_path, f"spool.folder={spool}", f"relay.url={relay.url}") as er:
            study, _ = await er.the_study()
            send = f"{er.console.url}{study}/send"
            form = {"csrf_token": er.token, "recipient": RECEIVER, "acknowledge": "yes"}
            status, job, _ = await post(er.client, send, form)
            assert (status, job[:6]) == (303, "/jobs/")
            # The same trauma center again (a double click): the push under way is followed.
            assert (await post(er.client, send, form))[:2] == (303, job)
            other = {**form, "recipient": "mercy-trauma"}
            status, _, page = await post(er.client, send, other)
    assert status == 409
    said = unescape(page)
    assert "being sent to County Level I Trauma Center now" in said
    assert "nothing was sent to Mercy Trauma Center" in said
    assert f'href="{job}"' in page


async def test_no_trauma_center_to_offer_is_not_said_as_none_added_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relay's operator disabled the only trauma center (`site disable`): the study page
    does not tell the nurse none was added "yet", which sends them asking for the wrong thing."""
    spool = await spooled_study(tmp_path)
    async with running_relay(tmp_path / "relay") as relay:
        await disable_site(relay.data_dir, RECEIVER, revoke_open=False)
        monkeypatch.setenv(CREDENTIAL_ENV, relay.sender_credential)
        async with er_console(tmp_path, f"spool.folder={spool}", f"relay.url={relay.url}") as er:
            study, _ = await er.the_study()
            status, _, page = await get(er.client, er.console.url + study)
    assert status == 200
    assert 'id="no-destination"' in page
    assert "yet" not in page
    assert "disabled" in page


async def test_a_relay_out_of_reach_is_said_in_the_consoles_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The study page cannot list the trauma centers, and a send (from a page loaded before)
    stops: each says so without the command line's "run the same command again" (there is no
    command at the console)."""
    spool = await spooled_study(tmp_path)
    monkeypatch.setenv(CREDENTIAL_ENV, "not-needed-nothing-answers")
    async with er_console(tmp_path, f"spool.folder={spool}") as er:
        study, _ = await er.the_study()
        status, _, page = await get(er.client, er.console.url + study)
        form = {"csrf_token": er.token, "recipient": RECEIVER, "acknowledge": "yes"}
        _, job, _ = await post(er.client, f"{er.console.url}{study}/send", form)
        assert job.startswith("/jobs/")
        stopped = await _until_stopped(er.client, er.console.url + job)
    assert status == 200
    assert "could not be reached" in page
    assert "The list of trauma centers could not be loaded" in page
    assert "command" not in page
    assert "could not be reached" in stopped
    assert "command" not in stopped


async def _until_stopped(client: aiohttp.ClientSession, url: str) -> str:
    """The push job's page once the job has stopped (it has no relay to reach)."""
    for _ in range(600):
        _, _, page = await get(client, url)
        if "Not sent" in page:
            return page
        await asyncio.sleep(0.1)
    raise AssertionError(page)
