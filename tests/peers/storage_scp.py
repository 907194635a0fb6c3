"""A real pynetdicom Storage SCP that records exactly what it receives, standing in for a PACS."""

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, cast

from pydicom.uid import UID, AllTransferSyntaxes
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.dimse_primitives import C_STORE

LOGGER = logging.getLogger(__name__)

SUCCESS = 0x0000
# C-STORE failure "Processing failure" (PS3.7 C.4.2.1.4, Annex C), for a handler error.
PROCESSING_FAILURE = 0xC211
# A calling AE title no sender uses: requiring it makes the SCP reject every association.
_NOBODY = "NOBODY-ALLOWED"
VERIFICATION = UID("1.2.840.10008.1.1")  # so that echoscu and C-ECHO work
# Query/Retrieve FIND (Patient Root, Study Root): answered with no matches, an empty PACS, so
# that the receiving site's identity check (C-FIND before C-STORE) passes.
QUERY_FIND = (UID("1.2.840.10008.5.1.4.1.2.1.1"), UID("1.2.840.10008.5.1.4.1.2.2.1"))


@dataclass(frozen=True)
class ReceivedInstance:
    """One C-STORE request as the SCP saw it.

    ``dataset`` is the encoded data set exactly as it came off the wire, in
    ``transfer_syntax``, without preamble or file meta. The UIDs are the command set's
    Affected SOP Class and Instance UIDs, not values decoded from the dataset.
    """

    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax: str
    calling_ae_title: str
    dataset: bytes
    status: int


class RecordingStorageSCP:
    """A Storage SCP on 127.0.0.1 that accepts every storage SOP class and transfer syntax.

    Use it as a context manager: entering starts the server in a background thread on a port
    the OS picks, leaving shuts it down. ``received`` maps each SOP Instance UID to the last
    copy stored with a success status; ``stores`` lists every C-STORE in arrival order, so
    resends show up.

    ``refuse_association`` rejects every association (permanent, "calling AE title not
    recognized"), like a PACS that does not know the sender. ``require_called_ae_title``
    rejects associations addressed to another AE title. ``transfer_syntaxes`` limits what it
    accepts, like a PACS that refuses compressed syntaxes. ``sop_classes`` limits the storage
    SOP classes it accepts, like a PACS that refuses a kind of image in any syntax.
    ``store_status`` is the status returned to every C-STORE, e.g. ``0xA700`` (out of
    resources).
    """

    def __init__(
        self,
        ae_title: str = "RECORDING-SCP",
        *,
        refuse_association: bool = False,
        require_called_ae_title: bool = False,
        transfer_syntaxes: Sequence[str] | None = None,
        sop_classes: Sequence[str] | None = None,
        store_status: int = SUCCESS,
    ) -> None:
        self.ae_title = ae_title
        self.host = "127.0.0.1"
        self.port = 0
        self._store_status = store_status
        self._condition = threading.Condition()
        self._received: dict[str, ReceivedInstance] = {}
        self._stores: list[ReceivedInstance] = []
        self._rejected = 0

        self._ae = AE(ae_title=ae_title)
        syntaxes = list(transfer_syntaxes) if transfer_syntaxes else list(AllTransferSyntaxes)
        for context in AllStoragePresentationContexts:
            sop_class = context.abstract_syntax
            if sop_class is not None and (sop_classes is None or sop_class in sop_classes):
                self._ae.add_supported_context(sop_class, syntaxes)
        self._ae.add_supported_context(VERIFICATION)
        for model in QUERY_FIND:
            self._ae.add_supported_context(model)
        self._ae.require_called_aet = require_called_ae_title
        if refuse_association:
            self._ae.require_calling_aet = [_NOBODY]
        self._server: Any = None

    def __enter__(self) -> Self:
        self._server = self._ae.start_server(
            (self.host, 0),
            block=False,
            evt_handlers=[
                (evt.EVT_C_STORE, self._on_c_store),
                (evt.EVT_C_FIND, self._on_c_find),
                (evt.EVT_REJECTED, self._on_rejected),
            ],
        )
        self.port = int(self._server.server_address[1])
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Let associations the peer is closing end on their own first: shutting down aborts
        # those still open, and pynetdicom raises in its thread when the abort meets one it
        # has just rejected and is waiting for the peer to close (Sta13, InvalidEventError).
        deadline = time.monotonic() + 5.0
        while self._server.active_associations and time.monotonic() < deadline:
            time.sleep(0.01)
        self._ae.shutdown()

    @property
    def received(self) -> dict[str, ReceivedInstance]:
        """A snapshot: SOP Instance UID to the last copy stored with a success status."""
        with self._condition:
            return dict(self._received)

    @property
    def stores(self) -> list[ReceivedInstance]:
        """A snapshot of every C-STORE request received, in order, whatever its status."""
        with self._condition:
            return list(self._stores)

    @property
    def rejected_associations(self) -> int:
        """How many associations this SCP has rejected."""
        with self._condition:
            return self._rejected

    def wait_for(self, count: int, timeout: float = 10.0) -> dict[str, ReceivedInstance]:
        """Wait until ``count`` distinct instances are stored, then return ``received``.

        Raises ``TimeoutError`` after ``timeout`` seconds, naming how many arrived.
        """
        deadline = time.monotonic() + timeout
        with self._condition:
            while len(self._received) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"{len(self._received)} of {count} instances arrived in {timeout} s"
                    )
                self._condition.wait(remaining)
            return dict(self._received)

    def _on_c_store(self, event: evt.Event) -> int:
        # Runs on pynetdicom's association thread; never raise across the association.
        try:
            request = cast(C_STORE, event.request)
            instance = ReceivedInstance(
                sop_instance_uid=str(request.AffectedSOPInstanceUID),
                sop_class_uid=str(request.AffectedSOPClassUID),
                transfer_syntax=str(event.context.transfer_syntax),
                calling_ae_title=str(event.assoc.requestor.ae_title),
                # The raw bytes of the C-STORE data set (request.DataSet, a BytesIO), never
                # decoded: what we compare is what the sender put on the wire.
                dataset=event.encoded_dataset(include_meta=False),
                status=self._store_status,
            )
        except Exception:
            LOGGER.exception("could not record a C-STORE request")
            return PROCESSING_FAILURE
        with self._condition:
            self._stores.append(instance)
            # 0xB000-0xB0FF are warnings: the SCP stored the object (PS3.4 B.2.3).
            if self._store_status == SUCCESS or self._store_status & 0xF000 == 0xB000:
                self._received[instance.sop_instance_uid] = instance
            self._condition.notify_all()
        return self._store_status

    def _on_c_find(self, event: evt.Event) -> Iterator[tuple[int, Any]]:
        """No matches: the generator ends at once and pynetdicom answers Success."""
        yield from ()

    def _on_rejected(self, event: evt.Event) -> None:
        with self._condition:
            self._rejected += 1
