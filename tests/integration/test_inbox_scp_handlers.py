"""The Storage SCP's associations carry our handlers only: none of pynetdicom's standard
per-message log handlers, which format several lines for every C-STORE and its answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from pynetdicom import AE, _config, evt

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
