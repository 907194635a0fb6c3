"""The receiving site fetching small images several to a request (`batch_staging`): what it
stages is what fetching them one at a time stages; a lost connection costs only the images not
yet whole; an image the relay swaps or a frame it mislabels stages nothing and says so. A real
relay (on each storage backend) and the sites' real client."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from staged_files import ct_entry

from receiving_site import batch_staging, errors, staging
from relay_api.plumbing import Ctx, code_proof, create_transfer, redeem, upload
from site_agent.client import RelayClient, RelayRefused, RelayUnreachable
from transfer_codes import wire
from transfer_codes.manifest import ManifestEntry


async def _redeemed(ctx: Ctx, count: int) -> tuple[str, bytes, list[ManifestEntry]]:
    """A redeemed transfer of `count` objects of different sizes (all past the preamble)."""
    sent = await create_transfer(ctx)
    entries = []
    for i in range(count):
        plain = os.urandom(200 + 70_001 * i)
        await upload(ctx, sent, i, plain)
        entries.append(ct_entry(i, len(plain), hashlib.sha256(plain).hexdigest()))
    assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200
    return sent.transfer_id, sent.data_key, entries


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.asyncio
async def test_a_batch_stages_what_one_at_a_time_stages(ctx: Ctx, tmp_path: Path) -> None:
    transfer_id, key, entries = await _redeemed(ctx, 5)
    (tmp_path / "one").mkdir()
    (tmp_path / "batch").mkdir()
    async with RelayClient(ctx.relay.url, ctx.tc) as client:
        for entry in entries:
            await staging.stage_object(client, transfer_id, key, entry, tmp_path / "one")
        staged = await batch_staging.stage_batch(
            client, transfer_id, key, entries, tmp_path / "batch"
        )
    assert [s.entry for s in staged] == entries
    assert [s.path.parent for s in staged] == [tmp_path / "batch"] * 5
    one, batch = _files(tmp_path / "one"), _files(tmp_path / "batch")
    assert batch == one
    assert len(batch) == 5
    assert all(data[:128] == bytes(128) for data in batch.values())  # preambles zeroed


@pytest.mark.asyncio
async def test_a_lost_connection_asks_again_only_for_what_was_not_whole(
    ctx: Ctx, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    transfer_id, key, entries = await _redeemed(ctx, 5)
    asked: list[list[int]] = []
    real = RelayClient.download_batch

    async def cut_once(
        self: RelayClient, transfer_id: str, indices: list[int]
    ) -> AsyncIterator[tuple[int, bytes]]:
        asked.append(indices)
        ends = 0
        async for index, block in real(self, transfer_id, indices):
            if len(asked) == 1 and ends == 2:  # two whole, the third begun: cut
                yield index, block[:10]
                raise RelayUnreachable("The connection to the relay was lost.", "reset")
            ends += not block
            yield index, block

    monkeypatch.setattr(RelayClient, "download_batch", cut_once)
    monkeypatch.setattr(batch_staging.asyncio, "sleep", _no_sleep)
    folder = tmp_path / "staged"
    folder.mkdir()
    async with RelayClient(ctx.relay.url, ctx.tc) as client:
        await batch_staging.stage_batch(client, transfer_id, key, entries, folder)
    assert asked == [[0, 1, 2, 3, 4], [2, 3, 4]]
    assert sorted(_files(folder)) == [f"IM{i:06d}.dcm" for i in range(5)]


@pytest.mark.asyncio
async def test_an_image_the_relay_swaps_stages_nothing_after_it(
    ctx: Ctx, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    transfer_id, key, entries = await _redeemed(ctx, 3)
    real = RelayClient.download_batch

    async def swapped(
        self: RelayClient, transfer_id: str, indices: list[int]
    ) -> AsyncIterator[tuple[int, bytes]]:
        # image 1's sealed bytes where image 2's belong, framed as image 2's
        parts: dict[int, list[bytes]] = {}
        async for index, block in real(self, transfer_id, indices):
            parts.setdefault(index, []).append(block)
        for index in indices:
            for block in parts[1 if index == 2 else index]:
                yield index, block

    monkeypatch.setattr(RelayClient, "download_batch", swapped)
    folder = tmp_path / "staged"
    folder.mkdir()
    async with RelayClient(ctx.relay.url, ctx.tc) as client:
        with pytest.raises(errors.VerificationFailed, match="Image 3 failed verification"):
            await batch_staging.stage_batch(client, transfer_id, key, entries, folder)
    assert sorted(_files(folder)) == ["IM000000.dcm", "IM000001.dcm"]


async def _no_sleep(_: float) -> None:
    pass


@pytest.mark.asyncio
async def test_a_frame_for_another_image_than_asked_is_refused(tmp_path: Path) -> None:
    """The client checks each frame against the order asked (a relay that answers other
    images is refused), and a body cut inside a frame is a lost connection."""
    bodies = [wire.object_frame(1, 3) + b"abc", wire.object_frame(0, 3) + b"ab"]

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=bodies.pop(0), content_type="application/octet-stream")

    app = web.Application()
    app.router.add_post("/api/v1/transfers/{transfer_id}/objects/fetch", answer)
    async with TestServer(app) as server, RelayClient(str(server.make_url("/")), None) as c:
        seen: list[Any] = []

        async def read() -> None:
            async for item in c.download_batch("T" * 24, [0, 1]):
                seen.append(item)

        with pytest.raises(RelayRefused, match="image 2 where image 1 was asked"):
            await read()
        with pytest.raises(RelayUnreachable):
            await read()
        assert seen == []


@pytest.mark.asyncio
async def test_a_transfer_gone_meanwhile_is_told_as_gone_not_as_a_failed_image(
    ctx: Ctx, tmp_path: Path
) -> None:
    """It expired while its images were being fetched: that is for good, so continuing is not
    offered (it was told as an image that failed, and Continue was offered once)."""
    from receiving_site.redeem import can_continue

    transfer_id, key, entries = await _redeemed(ctx, 2)
    ctx.clock.advance(30 * 24 * 3600)
    async with RelayClient(ctx.relay.url, ctx.tc) as client:
        with pytest.raises(errors.TransferGone) as one:
            await staging.stage_object(client, transfer_id, key, entries[0], tmp_path)
        with pytest.raises(errors.TransferGone) as batch:
            await batch_staging.stage_batch(client, transfer_id, key, entries, tmp_path)
    for raised in (one.value, batch.value):
        assert "send the study again with a new code" in raised.message
        assert not can_continue(raised)
