"""The consoles' lists that name patients are accesses in the agent's audit log, over real HTTP
(in-process): the trauma console's imports (its home page) and holds queue, the ER console's
recent studies (and each search of them) and its transfers. Each person's opening is recorded
(`list-viewed`, 110110 Patient Record: the list and how many it named, never who); the page's
own refreshes are not (its script's `X-Console-Refresh`, a meta refresh's `?refreshed` soon
after), while opening it again is, as is a `?refreshed` long after; an empty list, naming no
one, is not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from console_harness import NURSE, Console, running_console
from er_pages import er_console, spooled_study
from held_studies import held_study
from peers.ports import free_port
from relay_harness import register_sites, running_relay
from test_console_app import browser_like, get, post, signed_in
from test_er_transfer_page import _sent
from test_trauma_console_audit import WHERE, _at_the_preview, _audited, _ready

from receiving_site import hold_record, state
from receiving_site.console import imports
from sending_site.synthetic import make_ct_study
from site_agent.console.guard import REFRESH_HEADER
from site_agent.console.page_views import REFRESHED_VIEW
from site_agent.credential import CREDENTIAL_ENV
from transfer_codes.codes import RedemptionCode
from transfer_codes.tokens import new_transfer_id

pytestmark = pytest.mark.asyncio


def _listed(page: str, listed: int) -> dict[str, Any]:
    return {
        "action": "list-viewed",
        "event_id": "110110",
        "who": NURSE,
        "where": WHERE,
        "outcome": "success",
        "detail": {"page": page, "listed": listed},
    }


async def _opened_refreshed_and_reopened(
    client: aiohttp.ClientSession, console: Console, path: str
) -> int:
    """Open the list at `path`, let it refresh itself both ways, open it again, then refresh it
    each way long after: the views recorded are four (open, again, and each long after)."""
    url = f"{console.url}{path}"
    statuses = [(await get(client, url))[0]]
    statuses.append((await get(client, url, headers={REFRESH_HEADER: "1"}))[0])  # its script
    statuses.append((await get(client, f"{url}?refreshed"))[0])  # its meta refresh
    statuses.append((await get(client, url))[0])  # a person opens it again
    console.clock.advance(REFRESHED_VIEW + 1)
    statuses.append((await get(client, f"{url}?refreshed"))[0])  # no longer following one
    console.clock.advance(REFRESHED_VIEW + 1)
    # The script's header long after (or made by hand): a view too, never a way to read unseen.
    statuses.append((await get(client, url, headers={REFRESH_HEADER: "1"}))[0])
    assert statuses == [200] * 6
    return 4


async def test_the_trauma_consoles_list_of_imports_is_audited_once_per_opening(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tid = new_transfer_id()
    monkeypatch.setattr(imports, "redeem", _at_the_preview(tid))
    async with (
        running_console(tmp_path, "receiver", *_ready(tmp_path)) as console,
        browser_like() as client,
    ):
        token = await signed_in(client, console)  # its home page: no import listed yet
        code = RedemptionCode.generate(17).grouped()
        status, location, _ = await post(
            client, f"{console.url}/redeem", {"csrf_token": token, "code": code}
        )
        assert (status, location) == (303, f"/imports/{tid}")
        views = await _opened_refreshed_and_reopened(client, console, "/")
        # A mistyped code is answered with the page and its list: shown to a person again.
        form = {"csrf_token": token, "code": "XXXX"}
        assert (await post(client, f"{console.url}/redeem", form))[0] == 400

    assert _audited(console, "list-viewed") == [_listed("imports", 1)] * (views + 1)
    assert "DOE" not in console.audit.read_text("utf-8")


async def test_the_holds_queue_is_audited_once_per_opening(tmp_path: Path) -> None:
    async with (
        running_console(tmp_path, "receiver", *_ready(tmp_path)) as console,
        browser_like() as client,
    ):
        await signed_in(client, console)
        assert (await get(client, f"{console.url}/holds"))[0] == 200  # none held: not recorded
        state_dir = tmp_path / "state"
        for tid in (new_transfer_id(), new_transfer_id()):
            key = state.SavedKey(tid, "https://relay.test", b"k" * 32, "St. Mary's ED", False)
            state.save_key(state_dir, key)  # a study is held while its key is kept
            hold_record.save(state_dir, held_study(tid))
        views = await _opened_refreshed_and_reopened(client, console, "/holds")

    assert _audited(console, "list-viewed") == [_listed("holds", 2)] * views
    assert "DOE" not in console.audit.read_text("utf-8")


async def test_the_er_consoles_recent_studies_and_each_search_of_them_are_audited(
    tmp_path: Path,
) -> None:
    spool = await spooled_study(tmp_path)
    async with er_console(tmp_path, f"spool.folder={spool}") as er:  # signed in: its home page
        views = await _opened_refreshed_and_reopened(er.client, er.console, "/")
        for search in ("doe", "ER-1", "ROE", "  "):
            form = {"csrf_token": er.token, "search": search}
            assert (await post(er.client, f"{er.console.url}/", form))[0] == 200

    searched = {
        "action": "studies-searched",
        "event_id": "110112",
        "who": NURSE,
        "where": WHERE,
        "outcome": "success",
    }
    assert _audited(er.console, "list-viewed", "studies-searched") == [
        *[_listed("studies", 1)] * (1 + views),
        {**searched, "detail": {"page": "studies", "found": 1}},
        {**searched, "detail": {"page": "studies", "found": 1}},
        {**searched, "detail": {"page": "studies", "found": 0}},
        _listed("studies", 1),  # nothing typed: the whole list again
    ]
    text = er.console.audit.read_text("utf-8")
    assert "DOE" not in text.upper()
    assert "ER-1" not in text


async def test_the_er_consoles_list_of_transfers_is_audited_once_per_opening(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_ct_study(tmp_path / "study", 1, seed=4343)
    sending, receiving = await register_sites(tmp_path / "relay")
    monkeypatch.setenv(CREDENTIAL_ENV, sending)
    port = free_port()
    async with er_console(tmp_path, f"relay.url=http://127.0.0.1:{port}") as er:
        assert (await get(er.client, f"{er.console.url}/transfers"))[0] == 200  # none yet
        registered = (sending, receiving)
        async with running_relay(tmp_path / "relay", port=port, registered=registered) as relay:
            await _sent(relay, tmp_path / "state", tmp_path / "study")
            views = await _opened_refreshed_and_reopened(er.client, er.console, "/transfers")

    assert _audited(er.console, "list-viewed") == [_listed("transfers", 1)] * views
    assert "DOE" not in er.console.audit.read_text("utf-8")


async def test_the_er_consoles_study_page_is_audited_once_per_opening(tmp_path: Path) -> None:
    """A study's page names the patient: each person's opening is `study-viewed` (the inbox's
    id of the study, as its address has it), its own refreshes are not."""
    spool = await spooled_study(tmp_path)
    async with er_console(tmp_path, f"spool.folder={spool}") as er:
        views = await _opened_refreshed_and_reopened(er.client, er.console, "/studies/1")

    viewed = {
        "action": "study-viewed",
        "event_id": "110103",
        "who": NURSE,
        "where": WHERE,
        "outcome": "success",
        "detail": {"page": "study", "study": "1"},
    }
    assert _audited(er.console, "study-viewed") == [viewed] * views
    assert "DOE" not in er.console.audit.read_text("utf-8").upper()
