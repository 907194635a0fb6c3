"""A PACS sending the study again while a push follows it from the inbox (the ER pressed Send
in the PACS twice, or an auto-route and a staff send crossed): the copies arrive while the
first ones are still being uploaded. Byte for byte the same images change nothing in the
spool, so the push sends each image once, from the copy it read, and the code the patient
holds stays good. Changed copies replace the first: the push withdraws its transfer, and
sending again makes a new one. In-process: the inbox's keeper, its index and the push,
against the real relay, the resend made while the relay is being sent the first images."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pydicom
import pytest
from aiohttp import web
from faulty_link import FaultyLink, faulty_link
from inbox_harness import kept_inbox
from relay_harness import RECEIVER, Relay, running_relay

from sending_site import errors, journal
from sending_site.inbox.follow import SpooledStudy
from sending_site.inbox.keeping import Keeper
from sending_site.inbox.settings import InboxSettings
from sending_site.push import PushEvent, PushRequest, PushResult, Ready, push
from sending_site.synthetic import make_ct_study
from site_agent.client import RelayClient
from transfer_codes.codes import RedemptionCode

pytestmark = pytest.mark.asyncio

IMAGES = 60


async def _sent(keeper: Keeper, files: list[Path], source: str) -> None:
    """`source` sends `files` to the inbox (each kept as a WADO-RS part is)."""
    for file in files:
        status, reason = await asyncio.to_thread(keeper.keep_file, file.read_bytes(), source)
        assert status == 0, reason


def _changed(file: Path, folder: Path) -> Path:
    """The image of `file` with a changed header (the same SOP Instance UID), in `folder`."""
    ds = pydicom.dcmread(file)
    ds.ImageComments = "sent again, changed"
    folder.mkdir(exist_ok=True)
    ds.save_as(folder / file.name)
    return folder / file.name


def _request(relay: Relay, url: str, state: Path, source: SpooledStudy) -> PushRequest:
    return PushRequest(
        paths=[],
        relay=url,
        recipient=RECEIVER,
        credential=relay.sender_credential,
        state_dir=state,
        source=source,
    )


@asynccontextmanager
async def _resending(relay: Relay, keeper: Keeper, resend: list[Path]) -> AsyncIterator[str]:
    """The relay's address through a link on which, at the first upload, `resend` arrive at
    the inbox (from the scanner, this time): every upload waits for them."""
    resent: list[str] = []
    done = asyncio.Event()

    async def resend_once(request: web.Request) -> None:
        if "/objects" not in request.path or request.method == "GET":
            return
        if not resent:
            resent.append(request.path)
            await _sent(keeper, resend, "CTSCANNER")
            done.set()
        await done.wait()

    async with faulty_link(FaultyLink(relay.url, lambda _: None, before=resend_once)) as url:
        yield url
    assert resent, "the images were not sent again while the push was uploading"


async def _followed(
    relay: Relay, url: str, keeper: Keeper, settings: InboxSettings, study_uid: str
) -> tuple[PushResult, Ready]:
    """A push following the study through `url`."""
    source = SpooledStudy(settings, study_uid, poll=0.05, keeper=keeper)
    events: list[PushEvent] = []
    try:
        request = _request(relay, url, settings.spool.parent / "er", source)
        result = await push(request, events.append)
    finally:
        await source.close()
    (ready,) = [e for e in events if isinstance(e, Ready)]
    return result, ready


async def _state(relay: Relay, transfer_id: str) -> str:
    async with RelayClient(relay.url, relay.sender_credential) as client:
        transfer = await client.request("GET", f"/api/v1/transfers/{transfer_id}")
    return str(transfer["state"])


# A batch of these images is a 4 MB body, sent as bytes, of which aiohttp warns.
@pytest.mark.filterwarnings("ignore:Sending a large body directly:ResourceWarning")
@pytest.mark.parametrize("alone", [False, True], ids=["in-batches", "alone"])
async def test_the_same_images_sent_again_mid_upload_go_once_and_the_code_stays_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, alone: bool
) -> None:
    if alone:  # each image bigger than a segment: sent on its own, not in a batch
        monkeypatch.setattr("sending_site.push.SEGMENT_BYTES", 256 * 1024)
    # Half a megabyte each: more than the push reads ahead of its requests.
    files = make_ct_study(tmp_path / "study", IMAGES, rows=512, columns=512)
    study_uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    settings = InboxSettings(spool=tmp_path / "spool", stable_after=1.0)
    async with (
        kept_inbox(settings.spool) as (spool, _, keeper),
        running_relay(tmp_path / "relay") as relay,
    ):
        await _sent(keeper, files, "HOSPITALPACS")
        kept_before = sorted(p.name for p in spool.instances.glob("*.dcm"))
        async with _resending(relay, keeper, files) as url:
            result, _ = await _followed(relay, url, keeper, settings, study_uid)
        assert result.instances == IMAGES
        # The copies kept first are the ones kept still: nothing was replaced.
        assert sorted(p.name for p in spool.instances.glob("*.dcm")) == kept_before
        assert await _state(relay, result.ready.transfer_id) == "awaiting_authorization"


@pytest.mark.filterwarnings("ignore:Sending a large body directly:ResourceWarning")
async def test_changed_images_sent_again_mid_upload_withdraw_the_transfer(
    tmp_path: Path,
) -> None:
    """Copies with a changed header replace the first: the push withdraws its transfer at the
    first image it had not sent (the spool never gives that file back), so its code does not
    stay redeemable for a study that will not arrive; sending again makes a new transfer."""
    files = make_ct_study(tmp_path / "study", IMAGES, rows=512, columns=512)
    study_uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    changed = [_changed(f, tmp_path / "changed") for f in files[IMAGES // 2 :]]
    settings = InboxSettings(spool=tmp_path / "spool", stable_after=1.0)
    async with (
        kept_inbox(settings.spool) as (_, _, keeper),
        running_relay(tmp_path / "relay") as relay,
    ):
        await _sent(keeper, files, "HOSPITALPACS")
        async with _resending(relay, keeper, changed) as url:
            with pytest.raises(errors.TransferWithdrawn) as withdrawn:
                await _followed(relay, url, keeper, settings, study_uid)
            series = pydicom.dcmread(files[-1], stop_before_pixels=True).SeriesNumber
            assert f"An image of series {series} left the inbox before it was sent" in str(
                withdrawn.value
            )
            assert journal.unfinished(tmp_path / "er") == []
            (first,) = journal.every(tmp_path / "er")
            assert first.abandoned == "its files changed while they were being sent"
            assert f"its code {RedemptionCode.parse(first.code).grouped()} no longer works" in str(
                withdrawn.value
            )
            assert await _state(relay, first.transfer_id) == "revoked"
            again, ready = await _followed(relay, url, keeper, settings, study_uid)
        assert (ready.transfer_id != first.transfer_id, again.instances) == (True, IMAGES)
