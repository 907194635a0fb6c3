"""`trauma-relay reissue` whose request reaches the relay and whose answer is lost, in-process
against the real relay behind a link that drops the connection once the relay has answered
(`faulty_link`): the new code may be the relay's or not, so the command says so and prints no
code, `transfers` says it too, as does `push` of the same study (no code, QR or sheet), the
site's audit log records the outcome as unknown (not
refused), and the next re-issue, answered, gives the code as always."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from faulty_link import FaultyLink, faulty_link
from relay_harness import RECEIVER, running_relay

from sending_site import journal, phone
from sending_site.push import PushEvent, PushRequest, Ready, push
from sending_site.synthetic import make_ct_study
from site_agent.audit import FILE, verify_chain
from site_agent.client import RelayClient, RelayUnreachable
from transfer_codes.codes import RedemptionCode
from transfer_codes.wire import transfer_action
from trauma_relay.cli import main

pytestmark = pytest.mark.asyncio

NO_ANSWER = "new code may not have reached the relay, so it is not shown or printed"


def _answer_lost_once() -> Callable[[web.Request], str | None]:
    """The first re-issue's answer is lost: the relay takes it, the connection is dropped."""
    left = ["after"]

    def drop(request: web.Request) -> str | None:
        if request.method == "POST" and request.path.endswith("/reissue") and left:
            return left.pop()
        return None

    return drop


async def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`trauma-relay ...` in a thread (it runs its own event loop) beside the relay: its exit
    status, standard output and standard error."""
    status = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def _audited(state: Path, action: str) -> list[tuple[str, dict[str, Any]]]:
    log = state / "sending" / FILE
    verify_chain(log)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    return [(r["outcome"], r["detail"]) for r in records if r["action"] == action]


async def test_a_reissue_whose_answer_was_lost_says_so_and_the_next_gives_the_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_ct_study(tmp_path / "study", 1, seed=4545)
    state = tmp_path / "er"
    shown: list[Ready] = []

    def on_event(event: PushEvent) -> None:
        if isinstance(event, Ready):
            shown.append(event)

    async with running_relay(tmp_path / "relay") as relay:
        monkeypatch.setenv("TRAUMA_RELAY_CREDENTIAL", relay.sender_credential)
        link = FaultyLink(relay.url, _answer_lost_once())
        async with faulty_link(link) as url:
            request = PushRequest(
                paths=[tmp_path / "study"],
                relay=url,
                recipient=RECEIVER,
                credential=relay.sender_credential,
                state_dir=state,
            )
            await push(request, on_event)
            (sent,) = shown
            transfer_id = sent.transfer_id
            common = ("--state", str(state), "--qr", str(tmp_path / "code.png"))

            status, out, err = await _cli(capsys, "reissue", transfer_id, *common)
            assert status == 2, (out, err)
            assert link.dropped == [("after", "POST", transfer_action(transfer_id, "reissue"))]
            assert NO_ANSWER in err
            assert f"Run trauma-relay reissue {transfer_id} again" in err
            drawn = journal.load(state, transfer_id)
            assert not drawn.code_confirmed
            assert RedemptionCode.parse(drawn.code).grouped() not in out + err
            assert sent.code not in out + err

            status, listed, _ = await _cli(capsys, "transfers", "--state", str(state))
            assert status == 0
            assert f"{NO_ANSWER}, and the code before it may no longer work." in listed
            status, listed, _ = await _cli(capsys, "transfers", "--state", str(state), "--json")
            (view,) = json.loads(listed)["transfers"]
            assert NO_ANSWER in view["status"]

            # The same study pushed again finds its transfer whole on the relay: it shows no
            # code, no QR and no sheet of one the relay may not hold.
            sheet = tmp_path / "sheet.pdf"
            again = ("push", str(tmp_path / "study"), "--relay", url, "--to", RECEIVER, "--yes")
            status, out, err = await _cli(capsys, *again, "--sheet", str(sheet), *common)
            assert status == 0, err
            assert NO_ANSWER in out
            assert RedemptionCode.parse(drawn.code).grouped() not in out
            assert sent.code not in out
            assert not sheet.exists()
            assert not (tmp_path / "code.png").exists()
            kept = journal.load(state, transfer_id)
            assert (kept.code, kept.code_confirmed) == (drawn.code, False)

            status, out, err = await _cli(capsys, "reissue", transfer_id, *common, "--json")
            assert status == 0, err
            confirmed = journal.load(state, transfer_id)
            assert confirmed.code_confirmed
            assert json.loads(out)["code"] == RedemptionCode.parse(confirmed.code).grouped()
            assert confirmed.code != drawn.code
            status, listed, _ = await _cli(capsys, "transfers", "--state", str(state))
            assert NO_ANSWER not in listed

    by = {"via": "command line", "transfer": transfer_id}
    assert _audited(state, "code-reissued") == [
        ("unknown", {**by, "why": "RelayUnreachable"}),
        ("success", by),
    ]
    assert _audited(state, "sheet-printed") == []


async def test_break_glass_and_a_push_of_other_files_show_no_code_the_relay_may_not_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a re-issue whose answer was lost, `break-glass` (text and --json) and a push of
    other files of the same study (stopped: already sent) say the code is not confirmed in its
    place, never the new code or the one before."""
    make_ct_study(tmp_path / "study", 2, seed=4646)
    state = tmp_path / "er"
    shown: list[Ready] = []

    def on_event(event: PushEvent) -> None:
        if isinstance(event, Ready):
            shown.append(event)

    async with running_relay(tmp_path / "relay") as relay:
        monkeypatch.setenv("TRAUMA_RELAY_CREDENTIAL", relay.sender_credential)
        link = FaultyLink(relay.url, _answer_lost_once())
        async with faulty_link(link) as url:
            request = PushRequest(
                paths=[tmp_path / "study"],
                relay=url,
                recipient=RECEIVER,
                credential=relay.sender_credential,
                state_dir=state,
            )
            await push(request, on_event)
            (sent,) = shown
            transfer_id = sent.transfer_id
            common = ("--state", str(state), "--qr", str(tmp_path / "code.png"))
            status, _, _ = await _cli(capsys, "reissue", transfer_id, *common)
            assert status == 2
            drawn = journal.load(state, transfer_id)
            assert not drawn.code_confirmed
            codes = (sent.code, RedemptionCode.parse(drawn.code).grouped())

            glass = ("--reason", "Unconscious after a fall, no family reachable.")
            glass += ("--clinician", "Dr. Grey", "--state", str(state))
            status, out, err = await _cli(capsys, "break-glass", transfer_id, *glass)
            assert status == 0, err
            assert f"Code: The {NO_ANSWER}" in out
            assert "still works" not in out
            assert not any(code in out + err for code in codes)
            status, out, err = await _cli(capsys, "break-glass", transfer_id, *glass, "--json")
            assert status == 0, err
            told = json.loads(out)
            assert (told["code"], told["code_confirmed"], told["already"]) == (None, False, True)

            one_file = sorted((tmp_path / "study").rglob("*.dcm"))[0]
            other = ("push", str(one_file), "--relay", url, "--to", RECEIVER, "--yes")
            status, out, err = await _cli(capsys, *other, "--state", str(state))
            assert status != 0
            assert f"Transfer {transfer_id} already carries" in err
            assert NO_ANSWER in err
            assert "still works" not in err
            assert not any(code in out + err for code in codes)


def _read_lost(calls: list[int], lose: Callable[[int], bool]) -> Any:
    """`RelayClient.status` whose answer is lost on the calls `lose` names (counted from 1),
    as a connection dropped after the request left."""
    read = RelayClient.status

    async def status(client: RelayClient, transfer_id: str) -> dict[str, Any]:
        calls.append(len(calls) + 1)
        if lose(len(calls)):
            raise RelayUnreachable("no answer", "the connection was reset", unsent=False)
        return await read(client, transfer_id)

    return status


async def test_a_status_read_with_no_answer_before_anything_was_asked_is_recorded_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`reissue` and `break-glass` read the relay's status before asking it anything; when that
    read gets no answer, nothing was asked: the code stays as it was, and the site's audit log
    records both as refused, not unknown."""
    make_ct_study(tmp_path / "study", 1, seed=4747)
    state = tmp_path / "er"
    async with running_relay(tmp_path / "relay") as relay:
        monkeypatch.setenv("TRAUMA_RELAY_CREDENTIAL", relay.sender_credential)
        request = PushRequest(
            paths=[tmp_path / "study"],
            relay=relay.url,
            recipient=RECEIVER,
            credential=relay.sender_credential,
            state_dir=state,
        )
        transfer_id = (await push(request, lambda _: None)).ready.transfer_id
        before = journal.load(state, transfer_id)
        calls: list[int] = []
        monkeypatch.setattr(RelayClient, "status", _read_lost(calls, lambda _: True))
        status, _, err = await _cli(capsys, "reissue", transfer_id, "--state", str(state))
        assert status == 2, err
        glass = ("--reason", "Unconscious after a fall, no family reachable.")
        glass += ("--clinician", "Dr. Grey", "--state", str(state))
        status, _, err = await _cli(capsys, "break-glass", transfer_id, *glass)
        assert status == 2, err
        assert calls == [1, 2]
    after = journal.load(state, transfer_id)
    assert (after.code, after.code_confirmed) == (before.code, True)
    by = {"via": "command line", "transfer": transfer_id, "why": "RelayUnreachable"}
    assert _audited(state, "code-reissued") == [("refused", by)]
    assert _audited(state, "break-glass") == [("refused", {**by, "clinician": "Dr. Grey"})]


async def test_a_new_code_the_relay_took_is_shown_though_the_phone_and_status_failed_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The relay took the new code, then the phone's documents and the status read after get
    no answer: the re-issue stands (confirmed, shown, audited as success with the phone not
    updated), the command says the phone still shows the old code and that no sheet was
    written."""
    make_ct_study(tmp_path / "study", 1, seed=4848)
    state = tmp_path / "er"

    async def no_answer(*_: object) -> None:
        raise RelayUnreachable("no answer", "the connection was reset", unsent=False)

    async with running_relay(tmp_path / "relay") as relay:
        monkeypatch.setenv("TRAUMA_RELAY_CREDENTIAL", relay.sender_credential)
        request = PushRequest(
            paths=[tmp_path / "study"],
            relay=relay.url,
            recipient=RECEIVER,
            credential=relay.sender_credential,
            state_dir=state,
        )
        sent = (await push(request, lambda _: None)).ready
        calls: list[int] = []
        monkeypatch.setattr(RelayClient, "status", _read_lost(calls, lambda n: n == 2))
        monkeypatch.setattr(phone, "upload", no_answer)
        sheet = tmp_path / "sheet.pdf"
        argv = ("reissue", sent.transfer_id, "--state", str(state), "--sheet", str(sheet))
        status, out, err = await _cli(capsys, *argv, "--qr", str(tmp_path / "code.png"))
        assert status == 0, err
        assert calls == [1, 2]
    confirmed = journal.load(state, sent.transfer_id)
    assert confirmed.code_confirmed
    assert confirmed.code != RedemptionCode.parse(sent.code).compact()
    assert f"New code for transfer {sent.transfer_id}: " in out
    assert RedemptionCode.parse(confirmed.code).grouped() in out
    assert "The transfer sheet was not written" in out
    assert "phone could not be given the new code: it still shows the old one" in out
    assert not sheet.exists()
    by = {"via": "command line", "transfer": sent.transfer_id}
    assert _audited(state, "code-reissued") == [("success", {**by, "phone": "not-updated"})]
    assert _audited(state, "sheet-printed") == []
