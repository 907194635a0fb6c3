"""The ER console's transfer page over real HTTP (in-process console and relay): while the relay
is out of reach, the page still names the trauma center as staff know it; a break-glass
refused is audited; a new code whose answer was lost is neither shown nor printed until a
later one is confirmed, and one that never left leaves the code as it was; a new code asked
from a page left open after the transfer moved on is redirected to the transfer's page, which
says once why none was given."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from html import unescape
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from console_harness import NURSE
from er_pages import Er, er_console, spooled_study
from faulty_link import FaultyLink, faulty_link
from peers.ports import free_port
from relay_harness import RECEIVER, Relay, register_sites, running_relay
from test_console_app import get, post

from sending_site import journal, phone
from sending_site.phone import token_from_link
from sending_site.push import PushEvent, PushRequest, Ready, push
from sending_site.synthetic import make_ct_study
from site_agent.client import RelayClient, RelayUnreachable
from site_agent.credential import CREDENTIAL_ENV
from transfer_codes.codes import RedemptionCode
from transfer_codes.wire import transfer_action

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


async def _sent(relay: Relay, state: Path, study: Path, via: str | None = None) -> Ready:
    """A transfer of `study` sent from this ER (its journal in `state`), the family not asked;
    `via`: through this address in front of the relay (the journal keeps it)."""
    shown: list[Ready] = []

    def on_event(event: PushEvent) -> None:
        if isinstance(event, Ready):
            shown.append(event)

    request = PushRequest(
        paths=[study],
        relay=via or relay.url,
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


UNCONFIRMED = (
    "The new code may not have reached the relay, so it is not shown or printed, and the code "
    "before it may no longer work. Press Give a new code again, then print the new transfer "
    "sheet."
)


def _reissue_answer_lost_once() -> Callable[[web.Request], str | None]:
    """The relay's answer to the first re-issue is lost: it is done, then the connection is
    dropped (`FaultyLink` "after")."""
    left = ["after"]

    def drop(request: web.Request) -> str | None:
        if request.method == "POST" and request.path.endswith("/reissue") and left:
            return left.pop()
        return None

    return drop


async def _give_a_new_code(er: Er, transfer_id: str) -> tuple[int, str, str]:
    """Press "Yes, give a new code": the status, where it sends, and the page."""
    url = f"{er.console.url}/transfers/{transfer_id}/reissue"
    return await post(er.client, url, {"csrf_token": er.token})


async def _print_sheet(er: Er, transfer_id: str) -> tuple[int, str, str]:
    """Press "Print the transfer sheet": the status, the content type, and a page refusing
    it ("" for a sheet)."""
    url = f"{er.console.url}/transfers/{transfer_id}/sheet"
    form = {"csrf_token": er.token, "paper": "a4"}
    async with er.client.post(url, data=form, allow_redirects=False) as r:
        sheet = r.content_type == "application/pdf"
        return r.status, r.content_type, "" if sheet else await r.text()


def _shown_code(page: str) -> list[str]:
    return re.findall(r'<p class="code" id="code">(.*?)</p>', page)


def _grouped(code: str) -> str:
    return RedemptionCode.parse(code).grouped()


def _audited(er: Er, action: str) -> list[tuple[str, dict[str, Any]]]:
    records = [json.loads(line) for line in er.console.audit.read_text().splitlines()]
    return [(r["outcome"], r["detail"]) for r in records if r["action"] == action]


async def test_a_new_code_whose_answer_was_lost_is_not_shown_until_one_is_confirmed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Give a new code reaches the relay and its answer is lost: the relay may hold the new
    code or still the old one. The page shows neither code nor QR, says so and offers Give a
    new code again; the sheet is refused; the re-issue is audited with outcome unknown. The
    next re-issue is answered: its code is shown and printed."""
    make_ct_study(tmp_path / "study", 1, seed=4343, patient_name="ROE^JANE")
    state = tmp_path / "state"  # the console's state.folder
    async with running_relay(tmp_path / "relay") as relay:
        monkeypatch.setenv(CREDENTIAL_ENV, relay.sender_credential)
        link = FaultyLink(relay.url, _reissue_answer_lost_once())
        async with faulty_link(link) as url, er_console(tmp_path, f"relay.url={url}") as er:
            sent = await _sent(relay, state, tmp_path / "study", via=url)
            transfer_id = sent.transfer_id
            page_url = f"{er.console.url}/transfers/{transfer_id}"
            _, _, page = await get(er.client, page_url)
            assert _shown_code(page) == [sent.code]

            status, _, page = await _give_a_new_code(er, transfer_id)
            assert status == 502, page
            assert UNCONFIRMED in unescape(page)
            reissue_path = transfer_action(transfer_id, "reissue")
            assert link.dropped == [("after", "POST", reissue_path)]
            drawn = journal.load(state, transfer_id)
            assert _grouped(drawn.code) != sent.code
            assert not drawn.code_confirmed

            _, _, page = await get(er.client, page_url)
            assert UNCONFIRMED in unescape(page)
            assert _shown_code(page) == []
            assert 'id="code-qr"' not in page
            assert 'id="print-sheet"' not in page
            assert _grouped(drawn.code) not in page
            assert sent.code not in page
            assert f'href="/transfers/{transfer_id}/reissue"' in page
            status, _, page = await _print_sheet(er, transfer_id)
            assert status == 409, page
            assert f"No sheet was printed. {UNCONFIRMED}" in unescape(page)

            status, location, page = await _give_a_new_code(er, transfer_id)
            assert (status, location) == (303, f"/transfers/{transfer_id}?done=reissued"), page
            confirmed = journal.load(state, transfer_id)
            assert confirmed.code_confirmed
            assert confirmed.code != drawn.code
            assert len(confirmed.issued_at) == 2  # the first code's, then this one's
            _, _, page = await get(er.client, page_url)
            assert _shown_code(page) == [_grouped(confirmed.code)]
            assert UNCONFIRMED not in unescape(page)
            assert (await _print_sheet(er, transfer_id))[:2] == (200, "application/pdf")

    by = {"transfer": transfer_id}
    assert _audited(er, "code-reissued") == [
        ("unknown", {**by, "why": "RelayUnreachable"}),
        ("success", by),
    ]
    assert _audited(er, "sheet-printed") == [("refused", by), ("success", by)]


async def test_a_new_code_that_never_left_leaves_the_code_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Give a new code cannot reach the relay (no connection could be opened): the relay cannot
    have taken the new code, so the code before it stays, shown and printed, as for a
    refusal; audited as refused."""
    make_ct_study(tmp_path / "study", 1, seed=4444, patient_name="ROE^JOHN")
    state = tmp_path / "state"
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    sent_by_relay_client = RelayClient.reissue

    async def never_sent(_: RelayClient, transfer_id: str, locks: dict[str, object]) -> None:
        async with RelayClient(nowhere, None) as cut_off:
            await sent_by_relay_client(cut_off, transfer_id, locks)

    async with running_relay(tmp_path / "relay") as relay:
        monkeypatch.setenv(CREDENTIAL_ENV, relay.sender_credential)
        async with er_console(tmp_path, f"relay.url={relay.url}") as er:
            sent = await _sent(relay, state, tmp_path / "study")
            transfer_id = sent.transfer_id
            before = journal.load(state, transfer_id)
            with monkeypatch.context() as patched:
                patched.setattr(RelayClient, "reissue", never_sent)
                status, _, page = await _give_a_new_code(er, transfer_id)
            assert status == 502, page
            assert UNCONFIRMED not in unescape(page)
            after = journal.load(state, transfer_id)
            assert (after.code, after.capability) == (before.code, before.capability)
            assert after.issued_at == before.issued_at
            assert after.code_confirmed
            _, _, page = await get(er.client, f"{er.console.url}/transfers/{transfer_id}")
            assert _shown_code(page) == [sent.code]
            assert UNCONFIRMED not in unescape(page)
            assert (await _print_sheet(er, transfer_id))[:2] == (200, "application/pdf")

    assert _audited(er, "code-reissued") == [
        ("refused", {"transfer": transfer_id, "why": "RelayUnreachable"})
    ]


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


async def test_a_new_code_the_relay_took_is_shown_though_the_phone_was_not_given_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relay took the new code, then the phone's documents got no answer: the re-issue
    stands, its code is shown and printed, the page says the phone still shows the old code,
    and it is audited as success with the phone not updated (not unknown)."""
    make_ct_study(tmp_path / "study", 1, seed=4949, patient_name="ROE^JIM")
    state = tmp_path / "state"

    async def no_answer(*_: object) -> None:
        raise RelayUnreachable("no answer", "the connection was reset", unsent=False)

    async with running_relay(tmp_path / "relay") as relay:
        monkeypatch.setenv(CREDENTIAL_ENV, relay.sender_credential)
        async with er_console(tmp_path, f"relay.url={relay.url}") as er:
            sent = await _sent(relay, state, tmp_path / "study")
            transfer_id = sent.transfer_id
            with monkeypatch.context() as patched:
                patched.setattr(phone, "upload", no_answer)
                status, location, page = await _give_a_new_code(er, transfer_id)
            told = f"/transfers/{transfer_id}?done=reissued-phone-not-updated"
            assert (status, location) == (303, told), page
            confirmed = journal.load(state, transfer_id)
            assert confirmed.code_confirmed
            _, _, page = await get(er.client, er.console.url + location)
            assert _shown_code(page) == [_grouped(confirmed.code)]
            assert "it still shows the old one, which no longer works" in unescape(page)
            assert (await _print_sheet(er, transfer_id))[:2] == (200, "application/pdf")

    by = {"transfer": transfer_id}
    assert _audited(er, "code-reissued") == [("success", {**by, "phone": "not-updated"})]
