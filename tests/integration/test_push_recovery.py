"""A push after things went wrong, in-process against the real relay: a transfer the relay can no
longer finish is given up and a new one made; an unfinished transfer that a push of changed
files replaces is revoked; one that fails for good is withdrawn; a dropped connection is
retried by the same push. No code that went out with the patient stays redeemable for a study
that will not arrive."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from faulty_link import FaultyLink, faulty_link
from peers.ports import free_port
from relay_harness import RECEIVER, FakeClock, Relay, register_sites, running_relay

from sending_site import abandon, errors, journal
from sending_site.push import PushEvent, PushRequest, PushResult, Ready, Retrying, push
from sending_site.synthetic import make_ct_study
from site_agent import retry
from site_agent.client import RelayClient, RelayUnreachable
from transfer_codes.codes import RedemptionCode
from transfer_codes.keys import StretchedSecret, stretch_ahead, stretch_code, unwrap
from transfer_codes.tokens import new_transfer_id
from transfer_codes.wire import b64decode_text, b64encode_text


class Interrupted(Exception):
    """Stands for the ER closing the window once the code is shown."""


@pytest.fixture(autouse=True)
def short_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "DELAYS", (0.05,) * len(retry.DELAYS))


def _request(relay: Relay, state: Path, paths: list[Path], url: str | None = None) -> PushRequest:
    return PushRequest(
        paths=paths,
        relay=url or relay.url,
        recipient=RECEIVER,
        credential=relay.sender_credential,
        state_dir=state,
    )


async def _push(
    relay: Relay, state: Path, paths: list[Path], url: str | None = None
) -> tuple[PushResult, Ready]:
    events: list[PushEvent] = []
    result = await push(_request(relay, state, paths, url), events.append)
    ready = [e for e in events if isinstance(e, Ready)]
    assert len(ready) == 1
    return result, ready[0]


async def _interrupted_push(relay: Relay, state: Path, paths: list[Path]) -> Ready:
    """A push stopped right after its code was shown: the journal stays unfinished."""
    shown: list[Ready] = []

    def on_event(event: PushEvent) -> None:
        if isinstance(event, Ready):
            shown.append(event)
            raise Interrupted()

    with pytest.raises(Interrupted):
        await push(_request(relay, state, paths), on_event)
    (ready,) = shown
    assert [j.transfer_id for j in journal.unfinished(state)] == [ready.transfer_id]
    return ready


async def _sender(relay: Relay, method: str, path: str) -> Any:
    async with RelayClient(relay.url, relay.sender_credential) as client:
        return await client.request(method, path)


async def _state(relay: Relay, transfer_id: str) -> str:
    return str((await _sender(relay, "GET", f"/api/v1/transfers/{transfer_id}"))["state"])


def _abandoned(state: Path, transfer_id: str) -> str:
    record = journal.load(state, transfer_id)
    assert record.done
    return record.abandoned


# -- 1. a journal the relay can no longer finish is given up ------------------------------------


@pytest.mark.asyncio
async def test_push_after_a_revoke_sends_the_same_files_as_a_new_transfer(tmp_path: Path) -> None:
    make_ct_study(tmp_path / "study", 3)
    state = tmp_path / "er"
    async with running_relay(tmp_path / "relay") as relay:
        first = await _interrupted_push(relay, state, [tmp_path / "study"])
        await _sender(relay, "POST", f"/api/v1/transfers/{first.transfer_id}/revoke")

        result, again = await _push(relay, state, [tmp_path / "study"])

        assert not again.resumed
        assert again.transfer_id != first.transfer_id
        assert [(r.transfer_id, r.code, r.reason) for r in again.replaced] == [
            (first.transfer_id, first.code, "it was revoked")
        ]
        assert result.instances == 3
        assert _abandoned(state, first.transfer_id) == "it was revoked"
        assert not journal.load(state, again.transfer_id).abandoned
        assert journal.unfinished(state) == []
        # And again after that: nothing is left to resume or give up.
        _, third = await _push(relay, state, [tmp_path / "study"])
        assert third.replaced == ()


@pytest.mark.asyncio
async def test_push_after_expiry_sends_the_same_files_as_a_new_transfer(tmp_path: Path) -> None:
    make_ct_study(tmp_path / "study", 2)
    state = tmp_path / "er"
    clock = FakeClock()
    async with running_relay(tmp_path / "relay", clock=clock) as relay:
        first = await _interrupted_push(relay, state, [tmp_path / "study"])
        clock.advance(first.expires_at - clock.now + 1)

        result, again = await _push(relay, state, [tmp_path / "study"])

        assert (again.resumed, again.transfer_id != first.transfer_id) == (False, True)
        assert [r.reason for r in again.replaced] == ["it expired"]
        assert result.instances == 2
        assert _abandoned(state, first.transfer_id) == "it expired"


@pytest.mark.asyncio
async def test_push_when_the_relay_has_no_record_of_the_transfer(tmp_path: Path) -> None:
    make_ct_study(tmp_path / "study", 2)
    state = tmp_path / "er"
    async with running_relay(tmp_path / "relay") as relay:
        first = await _interrupted_push(relay, state, [tmp_path / "study"])
        # As after the relay's data was lost: the journal names a transfer nobody knows.
        record = journal.load(state, first.transfer_id)
        record.transfer_id = new_transfer_id()
        journal.save(state, record)
        (state / "sending" / f"{first.transfer_id}.json").unlink()

        _, again = await _push(relay, state, [tmp_path / "study"])

        assert not again.resumed
        assert [r.reason for r in again.replaced] == ["the relay has no record of it"]
        assert _abandoned(state, record.transfer_id) == "the relay has no record of it"


@pytest.mark.asyncio
async def test_push_when_the_code_was_locked_revokes_it_and_starts_anew(tmp_path: Path) -> None:
    make_ct_study(tmp_path / "study", 2)
    state = tmp_path / "er"
    async with running_relay(tmp_path / "relay") as relay:
        first = await _interrupted_push(relay, state, [tmp_path / "study"])
        db = sqlite3.connect(relay.data_dir / "relay.sqlite3")
        with db:  # ten wrong codes at the trauma center
            db.execute("UPDATE transfers SET state = 'locked' WHERE id = ?", (first.transfer_id,))
        db.close()

        _, again = await _push(relay, state, [tmp_path / "study"])

        assert not again.resumed
        assert [r.reason for r in again.replaced] == [
            "its code was locked after too many wrong tries"
        ]
        # Revoked, so a later re-issue cannot bring a second code for the patient to life.
        assert await _state(relay, first.transfer_id) == "revoked"


@pytest.mark.asyncio
async def test_an_interrupted_push_still_resumes(tmp_path: Path) -> None:
    make_ct_study(tmp_path / "study", 2)
    state = tmp_path / "er"
    async with running_relay(tmp_path / "relay") as relay:
        first = await _interrupted_push(relay, state, [tmp_path / "study"])
        _, again = await _push(relay, state, [tmp_path / "study"])
        assert (again.resumed, again.transfer_id, again.replaced) == (True, first.transfer_id, ())
        assert await _state(relay, first.transfer_id) == "awaiting_authorization"


@pytest.mark.asyncio
async def test_a_code_stretched_while_the_study_was_read_locks_the_new_transfer(
    tmp_path: Path,
) -> None:
    """`push` given a code secret stretched ahead (as the CLI starts one before it reads the
    study) makes the new transfer's code from it and locks it with that stretching's salt; the
    code opens the transfer as any other. A push that resumes draws nothing from its own."""
    make_ct_study(tmp_path / "study", 2)
    state = tmp_path / "er"
    ahead, unused = (concurrent.futures.Future[StretchedSecret]() for _ in range(2))
    ahead.set_result(stretch_ahead())
    unused.set_result(stretch_ahead())
    async with running_relay(tmp_path / "relay") as relay:
        request = _request(relay, state, [tmp_path / "study"])
        shown: list[PushEvent] = []

        def on_event(event: PushEvent) -> None:
            if isinstance(event, Ready):
                shown.append(event)
                raise Interrupted()

        with pytest.raises(Interrupted):
            await push(replace(request, stretched=ahead), on_event)
        (ready,) = shown
        code = RedemptionCode.parse(ready.code)
        assert code.secret == ahead.result().secret

        resumed: list[PushEvent] = []
        await push(replace(request, stretched=unused), resumed.append)
        (again,) = [e for e in resumed if isinstance(e, Ready)]
        assert (again.resumed, again.code) == (True, ready.code)

        token = ready.authorization_url.split("#", 1)[1].split(".", 1)[0]
        async with RelayClient(relay.url, None) as family:
            await family.request(
                "POST", "/api/v1/authorizations", json={"token": token, "authorizer_role": "family"}
            )
        async with RelayClient(relay.url, relay.receiver_credential) as receiver:
            salt = await receiver.redemption_salt(code.locator)
            assert salt == ahead.result().salt
            unlock = stretch_code(code, salt)
            answer = await receiver.redeem(
                {"locator": code.locator, "proof": b64encode_text(unlock.proof)}
            )
        assert answer["transfer_id"] == ready.transfer_id
        wrapped = b64decode_text(str(answer["wrapped_key"]))
        data_key = journal.load(state, ready.transfer_id).data_key
        assert unwrap(wrapped, unlock, ready.transfer_id) == data_key


@pytest.mark.asyncio
async def test_break_glass_on_resume_after_the_family_authorized_is_not_needed(
    tmp_path: Path,
) -> None:
    make_ct_study(tmp_path / "study", 2)
    state = tmp_path / "er"
    async with running_relay(tmp_path / "relay") as relay:
        first = await _interrupted_push(relay, state, [tmp_path / "study"])
        token = first.authorization_url.split("#", 1)[1].split(".", 1)[0]
        async with RelayClient(relay.url, None) as family:
            await family.request(
                "POST", "/api/v1/authorizations", json={"token": token, "authorizer_role": "family"}
            )
        events: list[PushEvent] = []
        request = _request(relay, state, [tmp_path / "study"])
        request = PushRequest(
            **{
                **request.__dict__,
                "break_glass_reason": "Patient intubated and no family reachable by phone",
                "clinician": "Dr. A. Example",
            }
        )
        result = await push(request, events.append)
        (again,) = [e for e in events if isinstance(e, Ready)]
        assert (again.resumed, again.break_glass, result.instances) == (True, False, 2)
        status = await _sender(relay, "GET", f"/api/v1/transfers/{first.transfer_id}")
        assert (status["authorized_by"], status["break_glass"]) == ("family", False)


# -- 2. a transfer replaced or failed for good is revoked --------------------------------------


@pytest.mark.asyncio
async def test_a_push_of_changed_files_revokes_the_unfinished_transfer(tmp_path: Path) -> None:
    make_ct_study(tmp_path / "study", 2)
    state = tmp_path / "er"
    async with running_relay(tmp_path / "relay") as relay:
        first = await _interrupted_push(relay, state, [tmp_path / "study"])
        # A slice turns up later (the file set changes), and another folder is pushed with it.
        (slice3,) = make_ct_study(tmp_path / "more", 3)[2:]
        shutil.copy(slice3, tmp_path / "study" / slice3.name)

        result, again = await _push(relay, state, [tmp_path / "study"])

        assert not again.resumed
        assert result.instances == 3
        assert [(r.transfer_id, r.code, r.reason) for r in again.replaced] == [
            (first.transfer_id, first.code, abandon.REPLACED)
        ]
        assert await _state(relay, first.transfer_id) == "revoked"
        assert _abandoned(state, first.transfer_id) == abandon.REPLACED
        assert await _state(relay, again.transfer_id) == "awaiting_authorization"


@pytest.mark.asyncio
async def test_a_touched_file_also_replaces_the_transfer(tmp_path: Path) -> None:
    """Sealing the same index again with other content would reuse keystream: a file that
    changed (here only its time) means a new transfer, and the old one is revoked."""
    files = make_ct_study(tmp_path / "study", 2)
    state = tmp_path / "er"
    async with running_relay(tmp_path / "relay") as relay:
        first = await _interrupted_push(relay, state, [tmp_path / "study"])
        os.utime(files[1], ns=(1_000_000_000, 1_000_000_000))
        _, again = await _push(relay, state, [tmp_path / "study"])
        assert [r.transfer_id for r in again.replaced] == [first.transfer_id]
        assert await _state(relay, first.transfer_id) == "revoked"


@pytest.mark.asyncio
async def test_another_patients_disc_in_the_same_drive_replaces_nothing(tmp_path: Path) -> None:
    make_ct_study(tmp_path / "drive", 2, patient_name="DOE^JANE", patient_id="ER-1")
    state = tmp_path / "er"
    async with running_relay(tmp_path / "relay") as relay:
        first = await _interrupted_push(relay, state, [tmp_path / "drive"])
        make_ct_study(tmp_path / "drive", 2, seed=7, patient_name="ROE^RICHARD", patient_id="ER-2")

        _, other = await _push(relay, state, [tmp_path / "drive"])

        assert other.replaced == ()
        assert await _state(relay, first.transfer_id) == "awaiting_authorization"
        assert [j.transfer_id for j in journal.unfinished(state)] == [first.transfer_id]


@pytest.mark.asyncio
async def test_a_push_refused_for_good_withdraws_its_transfer(tmp_path: Path) -> None:
    make_ct_study(tmp_path / "study", 2)
    state = tmp_path / "er"
    async with running_relay(tmp_path / "relay", max_object_size=1024) as relay:
        shown: list[Ready] = []
        with pytest.raises(errors.TransferWithdrawn) as refused:
            await push(
                _request(relay, state, [tmp_path / "study"]),
                lambda e: shown.append(e) if isinstance(e, Ready) else None,
            )
        (ready,) = shown
        assert "at most 1024 bytes" in str(refused.value)
        assert f"its code {ready.code} no longer works" in str(refused.value)
        assert await _state(relay, ready.transfer_id) == "revoked"
        assert _abandoned(state, ready.transfer_id) == "the relay refused part of it"
        assert journal.unfinished(state) == []


def _at_ready(shown: list[Ready], change: Callable[[], None]) -> Callable[[PushEvent], None]:
    """A push's listener that, once the code is shown (every file read, none sent yet), keeps
    the event in `shown` and makes `change`."""

    def on_event(event: PushEvent) -> None:
        if isinstance(event, Ready):
            shown.append(event)
            change()

    return on_event


def _alone(monkeypatch: pytest.MonkeyPatch, alone: bool) -> None:
    if alone:  # each image bigger than a segment: sent on its own, not in a batch
        monkeypatch.setattr("sending_site.push.SEGMENT_BYTES", 3000)


@pytest.mark.asyncio
@pytest.mark.parametrize("alone", [False, True], ids=["in-a-batch", "alone"])
async def test_a_file_that_changes_after_it_was_read_withdraws_the_transfer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, alone: bool
) -> None:
    """A file cut short between reading the study and sending it: the push names it and
    withdraws the transfer, whose code was shown already."""
    _alone(monkeypatch, alone)
    files = make_ct_study(tmp_path / "study", 3)
    state = tmp_path / "er"
    async with running_relay(tmp_path / "relay") as relay:
        shown: list[Ready] = []

        def cut_short() -> None:
            with files[-1].open("r+b") as f:
                f.truncate(files[-1].stat().st_size // 2)

        with pytest.raises(errors.TransferWithdrawn) as withdrawn:
            await push(_request(relay, state, [tmp_path / "study"]), _at_ready(shown, cut_short))
        (ready,) = shown
        assert f"{files[-1]} changed while it was being sent" in str(withdrawn.value)
        assert f"its code {ready.code} no longer works" in str(withdrawn.value)
        assert await _state(relay, ready.transfer_id) == "revoked"
        why = "its files changed while they were being sent"
        assert _abandoned(state, ready.transfer_id) == why
        assert journal.unfinished(state) == []


@pytest.mark.asyncio
@pytest.mark.parametrize("put_back", [True, False], ids=["put-back", "gone"])
@pytest.mark.parametrize("alone", [False, True], ids=["in-a-batch", "alone"])
async def test_a_file_removed_after_it_was_read_stops_the_push_to_be_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, alone: bool, put_back: bool
) -> None:
    """A file gone between reading the study and sending it (the disc taken out): the push
    stops and names it; the transfer stays. Once the file is back, the same push resumes
    with the same code; if it stays gone, the push sends the rest as a new transfer and
    revokes the first."""
    _alone(monkeypatch, alone)
    files = make_ct_study(tmp_path / "study", 3)
    state = tmp_path / "er"
    aside = tmp_path / "aside.dcm"
    async with running_relay(tmp_path / "relay") as relay:
        shown: list[Ready] = []

        def taken_out() -> None:
            files[-1].rename(aside)

        with pytest.raises(errors.FileGone) as gone:
            await push(_request(relay, state, [tmp_path / "study"]), _at_ready(shown, taken_out))
        (ready,) = shown
        assert f"{files[-1]} was removed after it was read, before it was sent" in str(gone.value)
        assert await _state(relay, ready.transfer_id) == "awaiting_authorization"
        assert [j.transfer_id for j in journal.unfinished(state)] == [ready.transfer_id]
        if put_back:
            aside.rename(files[-1])
        result, again = await _push(relay, state, [tmp_path / "study"])
        if put_back:
            assert (again.resumed, again.code, result.instances) == (True, ready.code, 3)
        else:
            assert (again.resumed, result.instances) == (False, 2)
            assert [r.transfer_id for r in again.replaced] == [ready.transfer_id]
            assert await _state(relay, ready.transfer_id) == "revoked"


@pytest.mark.asyncio
async def test_a_transfer_revoked_during_its_upload_is_given_up(tmp_path: Path) -> None:
    """The family withdraws consent on the phone while the images are still going up."""
    make_ct_study(tmp_path / "study", 3)
    state = tmp_path / "er"
    async with running_relay(tmp_path / "relay") as relay:

        async def revoke_first(request: web.Request) -> None:
            # the first manifest request after the summary's, one record or a batch
            batch = request.method == "POST" and request.path.endswith("/manifest")
            if request.path.endswith("/manifest/1") or batch:
                transfer_id = request.path.split("/")[4]
                await _sender(relay, "POST", f"/api/v1/transfers/{transfer_id}/revoke")

        link = FaultyLink(relay.url, lambda _: None, before=revoke_first)
        shown: list[Ready] = []
        async with faulty_link(link) as url:
            with pytest.raises(errors.TransferWithdrawn, match="it is revoked") as refused:
                await push(
                    _request(relay, state, [tmp_path / "study"], url),
                    lambda e: shown.append(e) if isinstance(e, Ready) else None,
                )
            (ready,) = shown
            assert f"its code {ready.code} no longer works" in str(refused.value)
            assert _abandoned(state, ready.transfer_id) == "it was revoked"
            link.before = None
            result, again = await _push(relay, state, [tmp_path / "study"], url)
        assert (again.resumed, again.replaced, result.instances) == (False, (), 3)


@pytest.mark.asyncio
async def test_a_journal_from_before_this_change_still_resumes(tmp_path: Path) -> None:
    make_ct_study(tmp_path / "study", 2)
    state = tmp_path / "er"
    async with running_relay(tmp_path / "relay") as relay:
        first = await _interrupted_push(relay, state, [tmp_path / "study"])
        path = state / "sending" / f"{first.transfer_id}.json"
        body = json.loads(path.read_text())
        del body["abandoned"], body["patient"]
        path.write_text(json.dumps(body))

        _, again = await _push(relay, state, [tmp_path / "study"])

        assert (again.resumed, again.transfer_id) == (True, first.transfer_id)
        record = journal.load(state, first.transfer_id)
        assert (record.done, record.abandoned, len(record.patient)) == (True, "", 64)


# -- 4. the same push rides out a dropped connection -------------------------------------------


def _once(method: str, when: str, path_has: str = "") -> Callable[[web.Request], str | None]:
    left = [when]

    def drop(request: web.Request) -> str | None:
        if request.method == method and path_has in request.path and left:
            return left.pop()
        return None

    return drop


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("method", "when", "path_has"),
    [
        ("PATCH", "before", "/objects/"),
        ("PATCH", "after", "/objects/"),
        ("PUT", "after", "/manifest/"),
        ("POST", "after", "/complete"),
    ],
)
async def test_the_same_push_rides_out_a_dropped_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str, when: str, path_has: str
) -> None:
    # Objects in several segments, so a lost PATCH answer leaves the relay mid-object.
    monkeypatch.setattr("sending_site.push.SEGMENT_BYTES", 3000)
    files = make_ct_study(tmp_path / "study", 3)
    state = tmp_path / "er"
    async with running_relay(tmp_path / "relay") as relay:
        if method == "POST":
            _complete_separately(monkeypatch)
        link = FaultyLink(relay.url, _once(method, when, path_has))
        async with faulty_link(link) as url:
            result, ready = await _push(relay, state, [tmp_path / "study"], url)
        assert [(w, m) for w, m, _ in link.dropped] == [(when, method)]
        assert (result.instances, ready.replaced) == (3, ())
        holdings = await _holdings(relay, ready.transfer_id)
        assert holdings.complete == {0, 1, 2}
        assert holdings.manifest_closed
        assert journal.load(state, ready.transfer_id).done
        assert sum(f.stat().st_size for f in files) == result.bytes


@pytest.mark.asyncio
@pytest.mark.parametrize("path_has", ["/objects", "/api/v1/transfers/"])
async def test_a_push_rides_out_a_dropped_connection_while_it_looks_at_its_new_transfer(
    tmp_path: Path, path_has: str
) -> None:
    """Just after creating its transfer the push asks the relay what it holds and its status
    (safe to ask again): a network blip then (two requests lost in a row, more than the HTTP
    client itself tries again) is waited out, not the end of the push (in the ER console, a
    "Not sent" page and a code nobody saw)."""
    make_ct_study(tmp_path / "study", 3)
    state = tmp_path / "er"
    lost = ["before", "before"]

    def drop(request: web.Request) -> str | None:
        asked = request.method == "GET" and path_has in request.path
        return lost.pop() if asked and lost else None

    async with running_relay(tmp_path / "relay") as relay:
        link = FaultyLink(relay.url, drop)
        events: list[PushEvent] = []
        async with faulty_link(link) as url:
            result = await push(_request(relay, state, [tmp_path / "study"], url), events.append)
    assert [(w, m) for w, m, _ in link.dropped] == [("before", "GET")] * 2
    assert any(isinstance(e, Retrying) for e in events)  # the wait is shown
    assert result.instances == 3
    assert journal.load(state, result.ready.transfer_id).done


@pytest.mark.asyncio
async def test_a_push_started_while_the_relay_is_briefly_down_waits_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The nurse presses Send while the relay restarts: nothing answers at its address until
    the push has said it waits. The push's first requests (is the relay up, creating the
    transfer) wait it out as its later ones do, saying so, instead of ending at once ("Not
    sent"); one transfer is made."""
    # Tried again every 0.2 s for 30 s in all, as long as the real waits: the relay may be slow
    # to start on a busy machine, and the push must not give up before it answers.
    monkeypatch.setattr(retry, "DELAYS", (0.2,) * 150)
    make_ct_study(tmp_path / "study", 3)
    state = tmp_path / "er"
    sending, receiving = await register_sites(tmp_path / "relay")
    port = free_port()
    request = PushRequest(
        paths=[tmp_path / "study"],
        relay=f"http://127.0.0.1:{port}",
        recipient=RECEIVER,
        credential=sending,
        state_dir=state,
    )
    events: list[PushEvent] = []
    pushing = asyncio.create_task(push(request, events.append))
    try:
        for _ in range(1200):  # until the push, finding nothing at the relay's port, waits
            if pushing.done() or any(isinstance(e, Retrying) for e in events):
                break
            await asyncio.sleep(0.05)
        assert not pushing.done(), pushing.exception()
        assert any(isinstance(e, Retrying) for e in events)  # the wait is shown
        async with running_relay(
            tmp_path / "relay", port=port, registered=(sending, receiving)
        ) as relay:
            result = await asyncio.wait_for(pushing, 60)
            (made,) = journal.every(state)
            assert await _state(relay, made.transfer_id) == "awaiting_authorization"
    finally:
        pushing.cancel()
    assert (result.instances, result.ready.transfer_id) == (3, made.transfer_id)
    assert made.done
    db = sqlite3.connect(tmp_path / "relay" / "relay.sqlite3")
    with contextlib.closing(db):
        assert db.execute("SELECT count(*) FROM transfers").fetchone() == (1,)


@pytest.mark.asyncio
async def test_a_creation_whose_answer_was_lost_is_not_made_again(tmp_path: Path) -> None:
    """Creating a transfer is not safe to repeat: the relay may have made it before the answer
    was lost. The push then stops (run again, or Try again) rather than make a second one."""
    make_ct_study(tmp_path / "study", 1)
    state = tmp_path / "er"
    async with running_relay(tmp_path / "relay") as relay:
        link = FaultyLink(relay.url, _once("POST", "after", "/api/v1/transfers"))
        async with faulty_link(link) as url:
            with pytest.raises(RelayUnreachable):
                await _push(relay, state, [tmp_path / "study"], url)
        assert [(w, m) for w, m, _ in link.dropped] == [("after", "POST")]
        db = sqlite3.connect(relay.data_dir / "relay.sqlite3")
        with contextlib.closing(db):
            assert db.execute("SELECT count(*) FROM transfers").fetchone() == (1,)
    assert journal.every(state) == []


@pytest.mark.asyncio
@pytest.mark.parametrize("when", ["before", "after"])
async def test_a_batch_of_small_images_rides_out_a_dropped_connection(
    tmp_path: Path, when: str
) -> None:
    """Small images go several to a request (POST …/objects); a batch whose request or answer
    was lost is sent again whole (the relay takes what it already holds again)."""
    files = make_ct_study(tmp_path / "study", 3)
    state = tmp_path / "er"
    async with running_relay(tmp_path / "relay") as relay:
        link = FaultyLink(relay.url, _once("POST", when, "/objects"))
        async with faulty_link(link) as url:
            result, ready = await _push(relay, state, [tmp_path / "study"], url)
        assert [(w, m, p.rsplit("/", 1)[-1]) for w, m, p in link.dropped] == [
            (when, "POST", "objects")
        ]
        assert (result.instances, ready.replaced) == (3, ())
        holdings = await _holdings(relay, ready.transfer_id)
        assert holdings.complete == {0, 1, 2}
        assert holdings.manifest_closed
        assert sum(f.stat().st_size for f in files) == result.bytes


class _HeldManifest:
    """Holds the first manifest request past the summary (record 0, which the push sends and
    awaits before the objects) until the relay has every object complete, so the records after
    it are all ready together; logs each manifest request as (method, the first record's
    number)."""

    def __init__(self, relay: Relay, objects: int) -> None:
        self.relay = relay
        self.objects = objects
        self.seen: list[tuple[str, int]] = []
        self.held = False

    async def __call__(self, request: web.Request) -> None:
        if "/manifest" not in request.path:
            return
        first = int(request.headers.get("Manifest-From") or request.path.rsplit("/", 1)[-1])
        self.seen.append((request.method, first))
        if first >= 1 and not self.held:
            self.held = True
            transfer_id = request.path.split("/")[4]
            for _ in range(3000):
                if len((await _holdings(self.relay, transfer_id)).complete) == self.objects:
                    return
                await asyncio.sleep(0.01)
            raise AssertionError("the objects never completed")


async def _push_held(
    tmp_path: Path,
    objects: int,
    drop: Callable[[web.Request], str | None],
    *,
    batches: bool = True,
) -> tuple[_HeldManifest, FaultyLink, Any, PushResult]:
    """Push `objects` images with record 1 held (`_HeldManifest`) through a link that drops
    what `drop` says and, unless `batches`, answers a batch of records as an older relay (405).
    Returns the manifest requests seen, the link, the relay's holdings and the result."""
    make_ct_study(tmp_path / "study", objects)
    async with running_relay(tmp_path / "relay") as relay:
        held = _HeldManifest(relay, objects)

        async def before(request: web.Request) -> None:
            await held(request)
            if not batches and request.method == "POST" and request.path.endswith("/manifest"):
                raise web.HTTPMethodNotAllowed("POST", ["GET"])

        link = FaultyLink(relay.url, drop, before=before)
        async with faulty_link(link) as url:
            result, ready = await _push(relay, tmp_path / "er", [tmp_path / "study"], url)
        assert journal.load(tmp_path / "er", ready.transfer_id).done
        return held, link, await _holdings(relay, ready.transfer_id), result


@pytest.mark.asyncio
async def test_records_ready_together_go_in_one_request_safe_to_repeat(tmp_path: Path) -> None:
    held, link, holdings, result = await _push_held(
        tmp_path, 5, _once("POST", "after", "/manifest")
    )
    # records ready together went in one request (a POST carries two or more); its answer
    # lost, the same batch again (how the records split otherwise depends on the machine's pace)
    posts = [n for n, (method, _) in enumerate(held.seen) if method == "POST"]
    assert posts, held.seen
    assert held.seen[posts[0] + 1] == held.seen[posts[0]], held.seen
    assert [(w, m) for w, m, _ in link.dropped] == [("after", "POST")]
    assert (holdings.manifest_records, holdings.manifest_closed) == (7, True)
    assert result.instances == 5


@pytest.mark.asyncio
async def test_a_relay_without_batches_gets_the_records_one_by_one(tmp_path: Path) -> None:
    held, _, holdings, result = await _push_held(tmp_path, 4, lambda _: None, batches=False)
    # one batch tried (refused: 405), then its records and the rest one by one, in order
    posts = [n for n, (method, _) in enumerate(held.seen) if method == "POST"]
    assert len(posts) == 1, held.seen
    first = held.seen[posts[0]][1]
    assert held.seen[posts[0] + 1 :] == [("PUT", n) for n in range(first, 6)], held.seen
    assert (holdings.manifest_records, holdings.manifest_closed) == (6, True)
    assert result.instances == 4


def _complete_separately(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the last PATCH of each object not complete it, as when a push resumes an object
    whose bytes were all sent: the push then completes it with POST .../complete."""
    from sending_site import push as push_module

    original = push_module._Uploader._append

    async def append(
        self: Any, index: int, start: int, segment: bytes, held: int, digest: str | None
    ) -> tuple[int, bool]:
        return await original(self, index, start, segment, held, None)

    monkeypatch.setattr(push_module._Uploader, "_append", append)


async def _holdings(relay: Relay, transfer_id: str) -> Any:
    async with RelayClient(relay.url, relay.sender_credential) as client:
        return await client.holdings(transfer_id)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("segment_bytes", "method", "sent_to", "images"),
    [
        (3000, "PATCH", "/objects/0", 2),  # objects of several segments go alone, by PATCH
        (None, "POST", "/objects", 1),  # small ones in batches (one image: one batch)
    ],
    ids=["alone", "batch"],
)
async def test_a_relay_out_of_reach_for_good_fails_the_push_and_keeps_the_transfer(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    segment_bytes: int | None,
    method: str,
    sent_to: str,
    images: int,
) -> None:
    if segment_bytes is not None:
        monkeypatch.setattr("sending_site.push.SEGMENT_BYTES", segment_bytes)
    make_ct_study(tmp_path / "study", images)
    state = tmp_path / "er"
    async with running_relay(tmp_path / "relay") as relay:

        def drop(r: web.Request) -> str | None:
            return "before" if r.method == method and r.path.endswith(sent_to) else None

        link = FaultyLink(relay.url, drop)
        async with faulty_link(link) as url:
            with pytest.raises(RelayUnreachable, match="run the same command again"):
                await _push(relay, state, [tmp_path / "study"], url)
            (record,) = journal.unfinished(state)
            tries = [path for _, _, path in link.dropped]
            # Each request is tried six times (`retry.DELAYS`) before the push gives up.
            assert tries.count(f"/api/v1/transfers/{record.transfer_id}{sent_to}") == 6
            # Not withdrawn: the same command, once the network is back, resumes it.
            assert await _state(relay, record.transfer_id) == "awaiting_authorization"
            link.drop = lambda _: None
            _, again = await _push(relay, state, [tmp_path / "study"], url)
        assert (again.resumed, again.transfer_id) == (True, record.transfer_id)
