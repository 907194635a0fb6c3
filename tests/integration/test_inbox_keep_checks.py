"""The inbox's keep, in this process, checks an arriving image from the bytes it has just
written (small images) or from the spool file (past `CHECKED_IN_MEMORY`): either way a cut-off
image is refused with the same reason and nothing is kept, and a whole one is kept byte for
byte behind our own file meta, with the description a following push takes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pydicom
import pytest

from sending_site.inbox import arrival, keeping
from sending_site.inbox.index import InboxIndex
from sending_site.inbox.keeping import Keeper
from sending_site.inbox.spool import Spool
from sending_site.synthetic import make_ct_study

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("in_memory", [True, False], ids=["from memory", "from the spool file"])
async def test_a_cut_off_image_is_refused_and_a_whole_one_kept_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_memory: bool
) -> None:
    if not in_memory:
        monkeypatch.setattr(keeping, "CHECKED_IN_MEMORY", 0)
    whole, other = make_ct_study(tmp_path / "study", 2, seed=61)
    pixels = pydicom.dcmread(other).get_item(0x7FE00010)
    cut = other.read_bytes()[: pixels.value_tell + pixels.length // 2]
    spool = Spool.open(tmp_path / "spool")
    index = await InboxIndex.open(spool.index)
    try:
        keeper = Keeper(spool, index, asyncio.get_running_loop())
        status, reason = await asyncio.to_thread(keeper.keep_file, bytearray(cut), "ORTHANC")
        assert status == arrival.CANNOT_UNDERSTAND
        assert reason.startswith("its data set is damaged (the file is cut off inside element")
        assert list(spool.instances.iterdir()) == list(spool.incoming.iterdir()) == []
        data = whole.read_bytes()
        status, reason = await asyncio.to_thread(keeper.keep_file, bytearray(data), "ORTHANC")
        assert (status, reason) == (arrival.SUCCESS, "")
        (kept,) = spool.instances.iterdir()
        meta = pydicom.dcmread(whole).file_meta
        header = arrival.part10_header(
            str(meta.MediaStorageSOPClassUID),
            str(meta.MediaStorageSOPInstanceUID),
            str(meta.TransferSyntaxUID),
            "ORTHANC",
        )
        group_length = int.from_bytes(data[140:144], "little")
        assert kept.read_bytes() == header + data[144 + group_length :]
        described = keeper.described(kept)
        assert described is not None
        assert described.sop_instance_uid == str(meta.MediaStorageSOPInstanceUID)
        assert described.size == kept.stat().st_size
    finally:
        await index.close()
