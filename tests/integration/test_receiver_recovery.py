"""The trauma center's agent never strands a transfer: a lost redemption answer or a crash
before the key is saved is recovered with the same code; a destination that cannot take the
study is found before the code is spent; every failure after the code is spent says exactly how
to continue. In-process relay on port 0, the real push, real pynetdicom Storage SCPs."""

from __future__ import annotations

import base64
import json
import shlex
import stat
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from peers.ports import free_port
from peers.storage_scp import RecordingStorageSCP
from pydicom.uid import JPEG2000Lossless
from relay_harness import RECEIVER, Relay, running_relay

from receiving_site import errors, folder_copy, redeem, staging, state
from receiving_site.pacs import PacsAddress
from receiving_site.redeem import RedeemRequest
from relay.storage.sqlite import SqliteMetadata
from sending_site.phone import token_from_link
from sending_site.push import PushRequest, Ready, push
from sending_site.synthetic import make_ct_study
from site_agent import retry
from site_agent.client import RelayClient, RelayUnreachable
from transfer_codes.codes import RedemptionCode

INSTANCES = 3
REDEMPTIONS = "/api/v1/redemptions"


@dataclass
class Pushed:
    relay: Relay
    transfer_id: str
    code: str
    work: Path
    capability: str = ""  # the text of the transfer's QR

    def request(self, **changes: Any) -> RedeemRequest:
        fields: dict[str, Any] = {
            "relay": self.relay.url,
            "credential": self.relay.receiver_credential,
            "state_dir": self.work / "tc-state",
            "secret": self.code,
            "out": self.work / "inbox",
        }
        fields.update(changes)
        return RedeemRequest(**fields)

    async def state(self) -> tuple[str, int]:
        store = await SqliteMetadata.open(self.relay.data_dir / "relay.sqlite3")
        try:
            async with store.transaction() as tx:
                t = await tx.transfer(self.transfer_id)
        finally:
            await store.close()
        assert t is not None
        return t.state.value, t.failed_attempts

    async def attempt_results(self) -> list[str]:
        store = await SqliteMetadata.open(self.relay.data_dir / "relay.sqlite3")
        try:
            records = await store.audit_records()
        finally:
            await store.close()
        return [
            json.loads(r["detail"]).get("result")
            for r in records
            if r["action"] == "redeem-attempt" and r["transfer_id"] == self.transfer_id
        ]

    def state_files(self) -> list[str]:
        """The receiving state folder's files, but the turn locks (`receiving_site.turns`)."""
        folder = self.work / "tc-state" / "receiving"
        names = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
        return [name for name in names if not name.startswith("lock-")]

    def delivered_files(self) -> list[str]:
        """What is left once delivered: the record of the delivery, by code and transfer."""
        locator = RedemptionCode.parse(self.code).locator
        return sorted([f"delivered-{locator}.json", f"delivered-{self.transfer_id}.json"])


@pytest_asyncio.fixture
async def pushed(tmp_path: Path) -> AsyncIterator[Pushed]:
    make_ct_study(tmp_path / "study", INSTANCES, seed=5)
    async with running_relay(tmp_path / "relay") as relay:
        events: list[object] = []
        await push(
            PushRequest(
                paths=[tmp_path / "study"],
                relay=relay.url,
                recipient=RECEIVER,
                credential=relay.sender_credential,
                state_dir=tmp_path / "er",
            ),
            events.append,
        )
        ready = next(e for e in events if isinstance(e, Ready))
        async with RelayClient(relay.url, None) as patient:
            await patient.request(
                "POST",
                "/api/v1/authorizations",
                json={"token": token_from_link(ready.authorization_url)},
            )
        yield Pushed(relay, ready.transfer_id, ready.code, tmp_path, ready.capability)


def quiet(_: object) -> None:
    pass


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redeem, "REDEEM_RETRY_DELAYS", (0.0, 0.0, 0.0))


Request = Callable[..., Any]


def intercept_redemptions(
    monkeypatch: pytest.MonkeyPatch, on_post: Callable[[Request, Any, dict[str, Any]], Any]
) -> None:
    """Route every POST /api/v1/redemptions through `on_post(real_request, client, body)`."""
    real: Request = RelayClient.request

    async def request(self: RelayClient, method: str, path: str, **kwargs: Any) -> Any:
        if method == "POST" and path == REDEMPTIONS:
            return await on_post(real, self, kwargs["json"])
        return await real(self, method, path, **kwargs)

    monkeypatch.setattr(RelayClient, "request", request)


# -- fix 1: a lost answer does not strand the transfer ----------------------------------------


@pytest.mark.asyncio
async def test_a_lost_redemption_answer_is_asked_again_with_the_same_id(
    pushed: Pushed, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[dict[str, Any]] = []

    async def lose_the_first_answer(real: Request, client: RelayClient, body: Any) -> Any:
        # the redemption id is on disk, private, before anything is sent
        pending = pushed.work / "tc-state" / "receiving"
        (saved,) = [p for p in pending.iterdir() if p.name.startswith("pending-")]
        assert stat.S_IMODE(saved.stat().st_mode) == 0o600
        assert json.loads(saved.read_text())["redemption_id"] == body["redemption_id"]
        sent.append(dict(body))
        answer = await real(client, "POST", REDEMPTIONS, json=body)  # the relay commits...
        if len(sent) == 1:
            raise RelayUnreachable("connection reset")  # ...and the answer is lost
        return answer

    intercept_redemptions(monkeypatch, lose_the_first_answer)
    result = await redeem.redeem(pushed.request(), quiet)

    assert result.instances == INSTANCES
    assert len(sent) == 2
    assert sent[0] == sent[1]
    assert len(base64.b64decode(sent[0]["redemption_id"])) == 32
    assert await pushed.attempt_results() == ["redeemed", "repeated"]
    assert await pushed.state() == ("delivered", 0)
    # key, staging and redemption id are gone once delivered
    assert pushed.state_files() == pushed.delivered_files()


class Crash(BaseException):
    """The receiving machine stops (power cut) at this point."""


@pytest.mark.asyncio
async def test_a_crash_before_the_key_is_saved_is_recovered_by_the_same_code(
    pushed: Pushed, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*_: object) -> None:
        raise Crash()

    with monkeypatch.context() as patch:
        patch.setattr(state, "save_key", crash)
        with pytest.raises(Crash):
            await redeem.redeem(pushed.request(), quiet)
    assert await pushed.state() == ("redeemed", 0)  # the code is spent...
    locator = RedemptionCode.parse(pushed.code).locator
    assert pushed.state_files() == [f"pending-{locator}.json"]  # ...but its id was kept

    result = await redeem.redeem(pushed.request(), quiet)  # the same command, the same code

    assert result.instances == INSTANCES
    assert await pushed.attempt_results() == ["redeemed", "repeated"]


@pytest.mark.asyncio
async def test_redemption_retries_are_bounded_and_say_to_use_the_same_code(
    pushed: Pushed, monkeypatch: pytest.MonkeyPatch
) -> None:
    tries: list[str] = []

    async def unreachable(real: Request, client: RelayClient, body: Any) -> Any:
        tries.append(body["redemption_id"])
        raise RelayUnreachable("connection refused")

    with monkeypatch.context() as patch:
        intercept_redemptions(patch, unreachable)
        with pytest.raises(RelayUnreachable) as raised:
            await redeem.redeem(pushed.request(), quiet)
    assert len(tries) == len(redeem.REDEEM_RETRY_DELAYS) + 1
    assert len(set(tries)) == 1  # one redemption id for every try
    assert "run the same command with the same code" in raised.value.detail
    # The trauma console has a field for the code, not a command.
    assert raised.value.for_console.endswith("Check the network, then enter the same code again.")
    assert await pushed.state() == ("authorized", 0)
    assert (await redeem.redeem(pushed.request(), quiet)).instances == INSTANCES


# -- fix 3: dead ends are found before the code is spent --------------------------------------


@pytest.mark.asyncio
async def test_a_folder_that_cannot_be_written_is_found_before_the_code_is_spent(
    pushed: Pushed,
) -> None:
    blocker = pushed.work / "not-a-folder"
    blocker.write_text("a file where the folder should be")

    with pytest.raises(errors.FolderUnusable) as raised:
        await redeem.redeem(pushed.request(out=blocker / "inbox"), quiet)

    assert "The code has not been used" in raised.value.message
    assert str(blocker / "inbox") in raised.value.message
    assert await pushed.state() == ("authorized", 0)
    assert await pushed.attempt_results() == []


# pynetdicom 3.0 leaves the socket of a refused connection unclosed (its shutdown() raises on
# an unconnected socket before close()); the garbage collector reports it, not our code.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.asyncio
async def test_an_unreachable_pacs_is_found_before_the_code_is_spent(pushed: Pushed) -> None:
    closed = PacsAddress("PACS", "127.0.0.1", free_port())
    with pytest.raises(errors.PacsUnreachable) as raised:
        await redeem.redeem(pushed.request(out=None, pacs=closed), quiet)
    assert "could not be reached" in raised.value.message
    assert "The code has not been used" in raised.value.message
    assert await pushed.state() == ("authorized", 0)


# -- fix 3: after the code is spent, every failure says how to continue -----------------------


def expected_command(pushed: Pushed, *where: str) -> str:
    return shlex.join(
        [
            "trauma-relay",
            "redeem",
            "--resume",
            pushed.transfer_id,
            "--relay",
            pushed.relay.url,
            *where,
            "--state",
            str(pushed.work / "tc-state"),
        ]
    )


def failing(error: Exception) -> Callable[..., Any]:
    def fail(*_: object, **__: object) -> Any:
        raise error

    return fail


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("where", "error"),
    [
        ("stage_object", RelayUnreachable("The connection to the relay was lost.")),
        ("check_identity", errors.VerificationFailed()),
        ("stage_object", errors.UploadUnfinished()),
        ("store_to_folder", PermissionError(13, "Permission denied")),
    ],
    ids=["relay-lost-mid-download", "verification", "upload-unfinished", "folder-write"],
)
async def test_every_failure_after_redemption_gives_the_resume_command(
    pushed: Pushed, monkeypatch: pytest.MonkeyPatch, where: str, error: Exception
) -> None:
    module = folder_copy if where == "store_to_folder" else staging
    with monkeypatch.context() as patch:
        patch.setattr(module, where, failing(error))
        with pytest.raises(Exception) as raised:  # noqa: PT011 - the type is checked below
            await redeem.redeem(pushed.request(), quiet)
    if isinstance(error, OSError):
        assert isinstance(raised.value, errors.ReceivingError)
    else:
        assert type(raised.value) is type(error)
    command = expected_command(pushed, "--out", str(pushed.work / "inbox"))
    assert str(raised.value).endswith(f"continue with: {command}")
    assert "That code was not accepted" not in str(raised.value)

    # The command as printed delivers (only the code is not needed any more).
    argv = shlex.split(command)
    resumed = await redeem.redeem(pushed.request(secret=None, resume=argv[3]), quiet)
    assert resumed.instances == INSTANCES
    assert await pushed.state() == ("delivered", 0)


@pytest.mark.asyncio
async def test_the_qr_of_a_transfer_its_code_redeemed_here_continues_without_the_relay(
    pushed: Pushed, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(staging, "stage_object", failing(RelayUnreachable("connection reset")))
        with pytest.raises(RelayUnreachable):
            await redeem.redeem(pushed.request(), quiet)  # the code, typed: redeemed, stopped
    assert await pushed.attempt_results() == ["redeemed"]
    sent: list[dict[str, Any]] = []

    async def record(real: Request, client: RelayClient, body: Any) -> Any:
        sent.append(dict(body))
        return await real(client, "POST", REDEMPTIONS, json=body)

    intercept_redemptions(monkeypatch, record)
    # Then the transfer's QR, scanned: it names the transfer whose key this machine keeps.
    result = await redeem.redeem(pushed.request(secret=pushed.capability), quiet)

    assert result.instances == INSTANCES
    assert sent == []  # no second redemption: the relay would refuse a new id
    assert await pushed.attempt_results() == ["redeemed"]
    assert await pushed.state() == ("delivered", 0)
    assert pushed.state_files() == pushed.delivered_files()  # no pending file of the QR's


# -- fix 2 and 3: a PACS that refuses a format stores nothing, and the same code resumes -------


@pytest.mark.asyncio
async def test_a_refused_format_stores_nothing_and_the_same_code_resumes(
    pushed: Pushed,
) -> None:
    # Accepts the verification and JPEG 2000 only: the synthetic CT is Explicit VR Little Endian,
    # which is sent as it is or not at all (only compressed images fall back to uncompressed).
    with RecordingStorageSCP(transfer_syntaxes=[JPEG2000Lossless]) as picky:
        address = PacsAddress(picky.ae_title, picky.host, picky.port)
        with pytest.raises(errors.PacsRefused) as raised:
            await redeem.redeem(pushed.request(out=None, pacs=address), quiet)
        assert picky.stores == []
    message = raised.value.message
    assert "CT Image Storage in Explicit VR Little Endian (3 images)" in message
    assert "Nothing was stored" in message
    assert message.endswith(expected_command(pushed, "--pacs", str(address)))
    assert await pushed.state() == ("redeemed", 0)

    with RecordingStorageSCP() as good:
        address = PacsAddress(good.ae_title, good.host, good.port)
        result = await redeem.redeem(pushed.request(out=None, pacs=address), quiet)
        assert len(good.received) == INSTANCES
    assert result.instances == INSTANCES
    assert await pushed.attempt_results() == ["redeemed", "repeated"]
    assert pushed.state_files() == pushed.delivered_files()


@pytest.mark.asyncio
async def test_the_count_told_grows_to_every_image_while_the_loop_is_busy(
    pushed: Pushed,
) -> None:
    """The C-STORE threads' counts reach the event loop held up by the first: it is told once
    storing has begun (none stored yet), then counts that only grow, the last being every image.
    How many counts come between depends on the threads' timing; that those the loop was too busy
    to take are told once, the latest, is tests/unit/test_stored_count.py."""
    told: list[tuple[int, int]] = []

    def on_event(event: object) -> None:
        if isinstance(event, redeem.Stored):
            told.append((event.images_done, event.images_total))
            if len(told) == 1:
                time.sleep(0.5)  # the loop is busy

    with RecordingStorageSCP() as scp:
        address = PacsAddress(scp.ae_title, scp.host, scp.port)
        result = await redeem.redeem(pushed.request(out=None, pacs=address), on_event)
        assert len(scp.received) == INSTANCES
    assert result.instances == INSTANCES
    assert told[0] == (0, INSTANCES)
    assert told[-1] == (INSTANCES, INSTANCES)
    done = [d for d, _ in told]
    assert done == sorted(set(done))  # each told once, never fewer than before
    assert {total for _, total in told} == {INSTANCES}


# -- found by the kill harness: the receipt's answer lost --------------------------------------


def lose_receipt_answers(monkeypatch: pytest.MonkeyPatch, lost: int) -> list[str]:
    """The relay stores each delivery receipt, but the answers to the first `lost` are lost
    (the relay died before answering, as in the kill harness): the transfer ids posted."""
    real: Request = RelayClient.receipt
    posted: list[str] = []

    async def receipt(self: RelayClient, transfer_id: str, body: Any) -> None:
        await real(self, transfer_id, body)  # the relay commits...
        posted.append(transfer_id)
        if len(posted) <= lost:
            raise RelayUnreachable("connection reset")  # ...and the answer is lost

    monkeypatch.setattr(RelayClient, "receipt", receipt)
    return posted


@pytest.mark.asyncio
async def test_a_lost_receipt_answer_is_asked_again(
    pushed: Pushed, monkeypatch: pytest.MonkeyPatch
) -> None:
    posted = lose_receipt_answers(monkeypatch, lost=1)
    monkeypatch.setattr(retry, "DELAYS", (0.0, 0.0))

    result = await redeem.redeem(pushed.request(), quiet)

    assert result.instances == INSTANCES
    assert posted == [pushed.transfer_id] * 2
    assert await pushed.state() == ("delivered", 0)
    assert pushed.state_files() == pushed.delivered_files()


@pytest.mark.asyncio
async def test_a_receipt_stored_but_never_answered_is_finished_by_the_same_code(
    pushed: Pushed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relay stays out of reach after storing the receipt: the command fails saying to
    run it again, and the same command with the same code then finishes from this machine's
    saved key (the relay, which repeats a redemption only until delivery, is not asked), instead
    of answering "That code was not accepted"."""
    with monkeypatch.context() as patch:
        lose_receipt_answers(patch, lost=100)
        patch.setattr(retry, "DELAYS", (0.0, 0.0))
        with pytest.raises(RelayUnreachable):
            await redeem.redeem(pushed.request(), quiet)
    assert await pushed.state() == ("delivered", 0)

    result = await redeem.redeem(pushed.request(), quiet)  # the same command, the same code

    assert result.instances == INSTANCES
    assert await pushed.attempt_results() == ["redeemed"]  # not asked again, so not refused
    assert await pushed.state() == ("delivered", 0)
    assert pushed.state_files() == pushed.delivered_files()


@pytest.mark.asyncio
async def test_a_delivery_kept_under_a_locator_is_not_taken_for_another_code(
    pushed: Pushed,
) -> None:
    """The relay gives a locator again once its transfer is gone: the delivery this machine
    recorded under it belongs to that earlier code only. Another code with the locator is
    redeemed, not answered "already delivered"."""
    locator = RedemptionCode.parse(pushed.code).locator
    folder = pushed.work / "tc-state" / "receiving"
    folder.mkdir(parents=True, mode=0o700)
    earlier = state.Delivery(
        "T" * 24, 3, 1000, "/elsewhere", False, 1_700_000_000.0, state.code_digest("0" * 16)
    )
    state.record_delivery(pushed.work / "tc-state", {str(locator)}, earlier)

    result = await redeem.redeem(pushed.request(), quiet)

    assert result.delivered_before is None
    assert (result.transfer_id, result.instances) == (pushed.transfer_id, INSTANCES)
    # The same code again is answered from this machine's record, now its own.
    again = await redeem.redeem(pushed.request(), quiet)
    assert again.delivered_before is not None
    assert again.transfer_id == pushed.transfer_id
