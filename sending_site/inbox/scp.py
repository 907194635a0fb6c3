"""The Storage SCP: Verification and every storage SOP class, in the common uncompressed and
compressed transfer syntaxes, kept as they came (never decompressed on the way in).

pynetdicom runs the handlers on its association threads. A C-STORE handler hands the instance to
the inbox's `Keeper` (`keeping`), waiting on its own thread: success is answered only once the
image is on disk and indexed, in a group commit with the images arriving with it.
Handlers never raise across the association: every failure is a failure status and a log
line.
"""

from __future__ import annotations

import errno
import logging
import threading
from dataclasses import dataclass
from typing import Any, cast

from pydicom.uid import (
    JPEG2000TransferSyntaxes,
    JPEGLSTransferSyntaxes,
    JPEGTransferSyntaxes,
    RLETransferSyntaxes,
    UncompressedTransferSyntaxes,
)
from pynetdicom import AE, AllStoragePresentationContexts, _config, evt
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.transport import ThreadedAssociationServer

from sending_site.inbox import arrival, errors
from sending_site.inbox.audited import NodeAudit
from sending_site.inbox.bounds import Limits, bounded_request_handler, peer_address
from sending_site.inbox.keeping import Keeper
from sending_site.inbox.settings import InboxSettings

LOGGER = logging.getLogger(__name__)

VERIFICATION = "1.2.840.10008.1.1"
# Explicit and Implicit VR Little Endian first: what a peer proposing many gets, when it
# proposes them first (the acceptor keeps the peer's order). Compressed images come as sent.
TRANSFER_SYNTAXES = [
    *UncompressedTransferSyntaxes,  # including Deflated and Explicit VR Big Endian
    *JPEGTransferSyntaxes,
    *JPEGLSTransferSyntaxes,
    *JPEG2000TransferSyntaxes,  # including High-Throughput JPEG 2000
    *RLETransferSyntaxes,
]
ASSOCIATION_REQUEST_WAIT = 10.0  # seconds from connecting to the association request


def _peer(assoc: Any) -> str:
    return f"{assoc.requestor.ae_title.strip()!r} at {peer_address(assoc)}"


def _calling(assoc: Any) -> str:
    return str(assoc.requestor.ae_title).strip()


def _host(assoc: Any) -> str:
    info = assoc.requestor.address_info
    return str(info.address) if info else "unknown"


@dataclass
class _Tally:
    """One association's images, logged once its connection has closed and no C-STORE of it
    is still being kept (a cut connection closes while its handler may still be writing)."""

    kept: int = 0
    refused: int = 0
    storing: int = 0
    closed: bool = False

    @property
    def over(self) -> bool:
        return self.closed and self.storing == 0


class StorageSCP:
    """The DICOM node of the agent, serving on threads until `stop()`."""

    def __init__(
        self, settings: InboxSettings, keeper: Keeper, audit: NodeAudit | None = None
    ) -> None:
        self._settings = settings
        self._keeper = keeper
        self._audit = audit
        self._tally: dict[int, _Tally] = {}  # by id() of an association still running
        self._tally_lock = threading.Lock()
        # No per-message log lines: pynetdicom's standard handlers format several for every
        # C-STORE and its answer, at levels the agent does not log (pynetdicom's logger is set
        # to ERROR). Refused and aborted associations are still logged, by our handlers.
        # Process-wide, as the receiving site sets it (`receiving_site.pacs`).
        _config.LOG_HANDLER_LEVEL = "none"
        self._ae = AE(ae_title=settings.ae_title)
        self._ae.maximum_pdu_size = settings.max_pdu_bytes
        self._ae.maximum_associations = settings.max_associations
        self._ae.require_called_aet = True
        self._ae.require_calling_aet = settings.callers  # empty: any caller
        # A connection counts against max_associations from the moment it is open, so one
        # that does not ask for an association soon (pynetdicom's ARTIM timer, the ACSE
        # timeout) is closed well before an idle association would be.
        self._ae.acse_timeout = min(ASSOCIATION_REQUEST_WAIT, settings.network_timeout)
        self._ae.dimse_timeout = settings.network_timeout
        self._ae.network_timeout = settings.network_timeout
        for context in AllStoragePresentationContexts:
            if context.abstract_syntax is not None:
                self._ae.add_supported_context(context.abstract_syntax, TRANSFER_SYNTAXES)
        self._ae.add_supported_context(VERIFICATION)
        self.port = 0

    def start(self) -> int:
        """Listen and serve on background threads; returns the port. Raises `PortInUse`."""
        limits = Limits(self._settings.max_pdu_bytes, self._settings.max_instance_bytes)
        try:
            server = self._ae.make_server(
                (self._settings.host, self._settings.port),
                evt_handlers=[
                    (evt.EVT_C_STORE, self._on_c_store),
                    (evt.EVT_REJECTED, self._on_rejected),
                    (evt.EVT_ABORTED, self._on_aborted),
                    (evt.EVT_CONN_CLOSE, self._on_closed),
                ],
                server_class=ThreadedAssociationServer,
                request_handler=bounded_request_handler(limits),
            )
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise errors.PortInUse(
                    f"The DICOM port {self._settings.port} is already in use by another "
                    "program. Stop that program or choose another port, and tell the PACS "
                    "administrator the port you chose."
                ) from e
            raise errors.InboxSettingInvalid(
                f"The agent cannot listen on {self._settings.host}:{self._settings.port} "
                f"({e.strerror or e}). Check the listen address and port."
            ) from e
        self._ae._servers.append(server)  # so that `AE.shutdown` stops it with the rest
        threading.Thread(target=server.serve_forever, name="inbox-scp", daemon=True).start()
        self.port = int(server.server_address[1])
        return self.port

    def stop(self) -> None:
        """Stop listening and abort the associations still open (blocks; not on the loop)."""
        self._ae.shutdown()

    # -- handlers, on pynetdicom's threads ------------------------------------------------

    def _on_c_store(self, event: evt.Event) -> int:
        with self._tally_lock:
            self._tally.setdefault(id(event.assoc), _Tally()).storing += 1
        status = arrival.PROCESSING_FAILURE
        try:
            status, reason = self._store(event)
            if reason:
                LOGGER.warning(
                    "Refused an image from %s (status 0x%04X): %s.",
                    _peer(event.assoc),
                    status,
                    reason,
                )
        except Exception:
            LOGGER.exception("Could not keep an image from %s.", _peer(event.assoc))
        finally:
            self._stored(event.assoc, kept=status == arrival.SUCCESS)
        return status

    def _store(self, event: evt.Event) -> tuple[int, str]:
        """(status, reason for the log)."""
        request = cast(C_STORE, event.request)
        if request.DataSet is None:
            return arrival.CANNOT_UNDERSTAND, "the request carries no data set"
        with request.DataSet.getbuffer() as data:
            return self._keeper.keep(
                data,
                sop_class=str(request.AffectedSOPClassUID or ""),
                sop_instance=str(request.AffectedSOPInstanceUID or ""),
                transfer_syntax=str(event.context.transfer_syntax),
                source=str(event.assoc.requestor.ae_title),
                said_by="request's Affected",
            )

    def _stored(self, assoc: Any, *, kept: bool) -> None:
        with self._tally_lock:
            tally = self._tally[id(assoc)]
            tally.storing -= 1
            if kept:
                tally.kept += 1
            else:
                tally.refused += 1
            over = tally.over and self._tally.pop(id(assoc)) is tally
        if over:
            self._ended(assoc, tally)

    def _on_rejected(self, event: evt.Event) -> None:
        answer: Any = event.assoc.acceptor.primitive  # the A-ASSOCIATE-RJ sent
        if (answer.result_source, answer.diagnostic) == (0x03, 0x02):
            why = f"{self._ae.maximum_associations} associations were already open"
        elif (answer.result_source, answer.diagnostic) == (0x01, 0x07):
            called = cast(Any, event.assoc.requestor.primitive).called_ae_title
            why = f"it was addressed to {arrival.shown(called)}, not to {self._ae.ae_title!r}"
        elif (answer.result_source, answer.diagnostic) == (0x01, 0x03):
            calling = cast(Any, event.assoc.requestor.primitive).calling_ae_title
            why = (
                f"its calling AE title {arrival.shown(calling)} is not one this agent takes "
                "images from (dicom.accept_from)"
            )
        else:
            why = f"reason {answer.result_source}/{answer.diagnostic} (PS3.8 9.3.4)"
        LOGGER.warning("Refused an association from %s: %s.", _peer(event.assoc), why)
        if self._audit is not None:
            self._audit.refused(_calling(event.assoc), _host(event.assoc), why)

    def _on_aborted(self, event: evt.Event) -> None:
        LOGGER.warning("The association from %s was aborted.", _peer(event.assoc))

    def _on_closed(self, event: evt.Event) -> None:
        if event.assoc.requestor.primitive is None:
            LOGGER.warning(
                "The connection from %s closed without asking for an association (this agent "
                "waits %g s for one).",
                peer_address(event.assoc),
                self._ae.acse_timeout,
            )
            return
        with self._tally_lock:
            tally = self._tally.get(id(event.assoc))
            over = False
            if tally is not None:
                tally.closed = True
                over = tally.over and self._tally.pop(id(event.assoc)) is tally
        if tally is not None and over:
            self._ended(event.assoc, tally)

    def _ended(self, assoc: Any, tally: _Tally) -> None:
        LOGGER.info(
            "Association from %s ended: %d image(s) kept, %d refused.",
            _peer(assoc),
            tally.kept,
            tally.refused,
        )
        if self._audit is not None:
            self._audit.received(
                _calling(assoc), _host(assoc), kept=tally.kept, refused=tally.refused
            )
