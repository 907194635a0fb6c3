"""The Storage SCP's associations carry our handlers only (none of pynetdicom's standard
per-message log handlers, which format several lines for every C-STORE and its answer), and
each association's images are tallied in one line when it ends."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pynetdicom import AE, _config, evt

from sending_site.inbox import arrival
from sending_site.inbox.keeping import Keeper
from sending_site.inbox.scp import VERIFICATION, StorageSCP
from sending_site.inbox.settings import InboxSettings


def test_associations_carry_no_per_message_log_handlers(tmp_path: Path) -> None:
    before = _config.LOG_HANDLER_LEVEL
    settings = InboxSettings(spool=tmp_path / "spool", host="127.0.0.1", port=0)
    scp = StorageSCP(settings, cast(Keeper, None))  # no image is stored here
    try:
        port = scp.start()
        requestor = AE(ae_title="CT1")
        requestor.add_requested_context(VERIFICATION)
        assoc = requestor.associate("127.0.0.1", port, ae_title=settings.ae_title)
        try:
            assert assoc.is_established
            assert assoc.send_c_echo().Status == 0x0000
            server: Any = scp._ae._servers[0]
            (accepted,) = server.active_associations
            for event in (evt.EVT_DIMSE_RECV, evt.EVT_DIMSE_SENT, evt.EVT_PDU_RECV):
                assert accepted.get_handlers(event) == []
                assert server.get_handlers(event) == []
        finally:
            assoc.release()
    finally:
        scp.stop()
        _config.LOG_HANDLER_LEVEL = before


class _HeldKeeper:
    """Keeps nothing, and answers each image only once the test lets it go."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def keep(self, data: memoryview, **_: str) -> tuple[int, str]:
        self.entered.set()
        assert self.release.wait(30), "the test never let the image go"
        return arrival.SUCCESS, ""


def test_a_cut_association_is_tallied_once_its_last_image_is_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A connection cut while an image is still being kept closes before that image's handler
    ends: the association's line counts it, and nothing of it stays behind."""
    caplog.set_level(logging.INFO, logger="sending_site.inbox.scp")
    settings = InboxSettings(spool=tmp_path / "spool", host="127.0.0.1", port=0)
    keeper = _HeldKeeper()
    scp = StorageSCP(settings, cast(Keeper, keeper))
    try:
        port = scp.start()
        image = dcmread(get_testdata_file("CT_small.dcm", read=False))
        requestor = AE(ae_title="CT1")
        requestor.dimse_timeout = 5  # how long its send waits for the answer the abort cancels
        requestor.add_requested_context(image.SOPClassUID, image.file_meta.TransferSyntaxUID)
        assoc = requestor.associate("127.0.0.1", port, ae_title=settings.ae_title)
        assert assoc.is_established
        sending = threading.Thread(target=assoc.send_c_store, args=(image,), daemon=True)
        sending.start()
        assert keeper.entered.wait(30)
        assoc.abort()
        # pynetdicom closes the connection on its own thread while ours still keeps the image
        _wait_for(lambda: all(t.closed for t in scp._tally.values()))
        assert "ended" not in caplog.text  # its image is still being kept
        keeper.release.set()
        _wait_for(lambda: "ended" in caplog.text)
        assert "Association from 'CT1' at 127.0.0.1" in caplog.text
        assert "ended: 1 image(s) kept, 0 refused." in caplog.text
        assert scp._tally == {}
        sending.join(30)  # its answer never comes: it waits out its DIMSE timeout
    finally:
        keeper.release.set()
        scp.stop()


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.01)
