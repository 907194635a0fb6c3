"""The ER console's transfer page over real HTTP (in-process console and relay): while the relay
is out of reach, the page still names the trauma center as staff know it; a break-glass
refused is audited; a new code asked from a page left open after the transfer moved on is
redirected to the transfer's page, which says once why none was given."""

from __future__ import annotations

import asyncio
import json
import re
from html import unescape
from pathlib import Path

import aiohttp
import pytest
from console_harness import NURSE
from er_pages import Er, er_console, spooled_study
from peers.ports import free_port
from relay_harness import RECEIVER, Relay, register_sites, running_relay
from test_console_app import get, post

from sending_site.phone import token_from_link
from sending_site.push import PushEvent, PushRequest, Ready, push
from sending_site.synthetic import make_ct_study
from site_agent.client import RelayClient
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


REASON = "Unconscious after a fall, no family reachable."
CLINICIAN = "Dr. Grey"


async def _sent(relay: Relay, state: Path, study: Path) -> Ready:
    """A transfer of `study` sent from this ER (its journal in `state`), the family not asked."""
    shown: list[Ready] = []

    def on_event(event: PushEvent) -> None:
        if isinstance(event, Ready):
            shown.append(event)

    request = PushRequest(
        paths=[study],
        relay=relay.url,
        recipient=RECEIVER,
        credential=relay.sender_credential,
        state_dir=state,
    )
    await push(request, on_event)
    (ready,) = shown
    return ready


async def _break_glass(er: Er, sent: Ready, form: dict[str, str]) -> tuple[int, str]:
    """Press "Authorize by break-glass" on `sent`'s page with `form`: the status and the page."""
    url = f"{er.console.url}/transfers/{sent.transfer_id}/break-glass"
    status, _, page = await post(er.client, url, {"csrf_token": er.token, **form})
    return status, page


async def test_a_refused_break_glass_is_audited_with_the_clinician_never_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Break-glass that the plan or the relay refuses (the family authorized already, the
    transfer revoked, the relay out of reach) is answered with the error page and audited as
    refused, with what refused it and the clinician who tried, as a refused re-issue or
    revocation is; never the reason. A form still to be corrected (a vague reason, no
    clinician) asks nothing of the relay and is not audited, as Send without a trauma center."""
    make_ct_study(tmp_path / "consented", 1, seed=4141, patient_name="ROE^JANE")
    make_ct_study(tmp_path / "revoked", 1, seed=4242, patient_name="ROE^JOHN")
    sending, receiving = await register_sites(tmp_path / "relay")
    monkeypatch.setenv(CREDENTIAL_ENV, sending)
    port = free_port()
    glass = {"reason": REASON, "clinician": f"  {CLINICIAN} "}  # as typed: recorded trimmed
    async with er_console(tmp_path, f"relay.url=http://127.0.0.1:{port}") as er:
        state = tmp_path / "state"  # the console's state.folder
        registered = (sending, receiving)
        async with running_relay(tmp_path / "relay", port=port, registered=registered) as relay:
            consented = await _sent(relay, state, tmp_path / "consented")
            revoked = await _sent(relay, state, tmp_path / "revoked")
            async with RelayClient(relay.url, None) as phone:
                await phone.authorize(token_from_link(consented.authorization_url))
            async with RelayClient(relay.url, sending) as elsewhere:  # another of its machines
                await elsewhere.revoke(revoked.transfer_id)

            for form in ({**glass, "reason": "unconscious"}, {**glass, "clinician": " "}):
                status, page = await _break_glass(er, consented, form)
                assert status == 400, page
            status, page = await _break_glass(er, consented, glass)
            assert status == 400, page
            assert "already authorized" in page
            status, page = await _break_glass(er, revoked, glass)
            assert status == 400, page
        # The relay is down now.
        status, page = await _break_glass(er, consented, glass)
        assert status == 502, page

    records = [json.loads(line) for line in er.console.audit.read_text().splitlines()]
    refused = [r for r in records if r["action"] == "break-glass"]
    assert [(r["who"], r["where"], r["outcome"], r["event_id"]) for r in refused] == [
        (NURSE, "127.0.0.1", "refused", "110113")
    ] * 3
    assert [r["detail"] for r in refused] == [
        {"transfer": sent.transfer_id, "why": why, "clinician": CLINICIAN}
        for sent, why in (
            (consented, "BreakGlassNotNeeded"),
            (revoked, "BreakGlassTooLate"),
            (consented, "RelayUnreachable"),
        )
    ]
    assert REASON not in er.console.audit.read_text()


NO_NEW_CODE = (
    "No new code was given, and nothing was changed: since this page was opened, this "
    "transfer was revoked."
)


async def test_a_new_code_asked_after_the_transfer_moved_on_redirects_and_says_so_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Yes, give a new code, from a page left open while the transfer was revoked from another
    of the ER's machines: audited as refused (moved on), and redirected (POST, 303, GET) to the
    transfer's page, which says so once; reloaded, it asks nothing again and says only where
    the transfer stands. It used to answer the POST with the page, so a reload posted again."""
    make_ct_study(tmp_path / "revoked", 1, seed=4343, patient_name="ROE^JOHN")
    sending, receiving = await register_sites(tmp_path / "relay")
    monkeypatch.setenv(CREDENTIAL_ENV, sending)
    port = free_port()
    async with er_console(tmp_path, f"relay.url=http://127.0.0.1:{port}") as er:
        registered = (sending, receiving)
        async with running_relay(tmp_path / "relay", port=port, registered=registered) as relay:
            sent = await _sent(relay, tmp_path / "state", tmp_path / "revoked")
            async with RelayClient(relay.url, sending) as elsewhere:  # another of its machines
                await elsewhere.revoke(sent.transfer_id)
            page = f"{er.console.url}/transfers/{sent.transfer_id}"
            posted = await post(er.client, f"{page}/reissue", {"csrf_token": er.token})
            _, _, told = await get(er.client, page)
            _, _, reloaded = await get(er.client, page)

    assert posted[:2] == (303, f"/transfers/{sent.transfer_id}")
    assert NO_NEW_CODE in unescape(told)
    assert 'id="problem"' not in reloaded
    records = [json.loads(line) for line in er.console.audit.read_text().splitlines()]
    refused = [(r["outcome"], r["detail"]) for r in records if r["action"] == "code-reissued"]
    assert refused == [
        ("refused", {"transfer": sent.transfer_id, "why": "moved-on", "state": "revoked"})
    ]
