"""A PACS sending the study again while a push follows it from the inbox (the ER pressed Send
in the PACS twice, or an auto-route and a staff send crossed): the copies arrive while the
first ones are still being uploaded. Byte for byte the same images change nothing in the
spool, so the push sends each image once, from the copy it read, and the code the patient
holds stays good. In-process: the inbox's keeper, its index and the push, against the real
relay, the resend made while the relay is being sent the first images."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pydicom
import pytest
from aiohttp import web
from faulty_link import FaultyLink, faulty_link
from inbox_harness import kept_inbox
from relay_harness import RECEIVER, running_relay

from sending_site.inbox.follow import SpooledStudy
from sending_site.inbox.keeping import Keeper
from sending_site.inbox.settings import InboxSettings
from sending_site.push import PushRequest, push
from sending_site.synthetic import make_ct_study
from site_agent.client import RelayClient

pytestmark = pytest.mark.asyncio

IMAGES = 60


async def _sent(keeper: Keeper, files: list[Path], source: str) -> None:
    """`source` sends `files` to the inbox (each kept as a WADO-RS part is)."""
    for file in files:
        status, reason = await asyncio.to_thread(keeper.keep_file, file.read_bytes(), source)
        assert status == 0, reason


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
        resent: list[str] = []
        done = asyncio.Event()

        async def resend_once(request: web.Request) -> None:
            """At the first upload, the PACS sends the study again; every upload waits."""
            if "/objects" not in request.path or request.method == "GET":
                return
            if not resent:
                resent.append(request.path)
                await _sent(keeper, files, "CTSCANNER")  # from the scanner, this time
                done.set()
            await done.wait()

        link = FaultyLink(relay.url, lambda _: None, before=resend_once)
        source = SpooledStudy(settings, study_uid, poll=0.05, keeper=keeper)
        try:
            async with faulty_link(link) as url:
                request = PushRequest(
                    paths=[],
                    relay=url,
                    recipient=RECEIVER,
                    credential=relay.sender_credential,
                    state_dir=tmp_path / "er",
                    source=source,
                )
                result = await push(request, lambda _: None)
        finally:
            await source.close()
        assert resent, "the images were not sent again while the push was uploading"
        assert result.instances == IMAGES
        # The copies kept first are the ones kept still: nothing was replaced.
        assert sorted(p.name for p in spool.instances.glob("*.dcm")) == kept_before
        async with RelayClient(relay.url, relay.sender_credential) as client:
            transfer = await client.request("GET", f"/api/v1/transfers/{result.ready.transfer_id}")
        assert transfer["state"] == "awaiting_authorization"
