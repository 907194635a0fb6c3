"""Run the inbox: open the spool and its index, catch up on what a crash left unindexed, serve
DICOM until asked to stop, then close everything in reverse order."""

from __future__ import annotations

import asyncio
import logging
import signal
import warnings
from collections.abc import Callable

from pydicom.errors import InvalidDicomError

from sending_site import collect
from sending_site.inbox import arrival
from sending_site.inbox.audited import NodeAudit
from sending_site.inbox.index import InboxIndex, Kept
from sending_site.inbox.keeping import Keeper
from sending_site.inbox.scp import StorageSCP
from sending_site.inbox.settings import InboxSettings
from sending_site.inbox.spool import Spool

LOGGER = logging.getLogger(__name__)


async def adopt_unindexed(spool: Spool, index: InboxIndex) -> int:
    """Index the kept files the index does not know (kept just before a crash, or answered
    late); delete those that are damaged or conflict. Returns how many were indexed."""
    adopted = 0
    for instance_id in sorted(spool.kept_ids() - await index.indexed_files()):
        path = spool.path_of(instance_id)
        try:
            with warnings.catch_warnings(record=True):
                warnings.simplefilter("always")
                ds = collect.read_checked(path)
                found = arrival.describe(
                    ds,
                    instance_id=instance_id,
                    transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
                    size=path.stat().st_size,
                    arrived_at=path.stat().st_mtime,
                    calling_ae_title=str(ds.file_meta.get("SourceApplicationEntityTitle", "")),
                )
            refused = arrival.refusal(found, found.sop_class_uid, found.sop_instance_uid)
            outcome = refused or await index.record(found, same=spool.same_data_set)
        except (InvalidDicomError, ValueError, EOFError, KeyError, TypeError, OSError) as e:
            outcome = arrival.Refusal(arrival.CANNOT_UNDERSTAND, f"it is damaged ({e})")
        if isinstance(outcome, Kept) and outcome.replaced == instance_id:
            LOGGER.info("Deleted the unindexed spool file %s: the same image is kept.", path.name)
            spool.discard(path)
        elif isinstance(outcome, Kept):
            adopted += 1
            if outcome.replaced:
                spool.discard(spool.path_of(outcome.replaced))
        else:
            LOGGER.warning("Deleted the unindexed spool file %s: %s.", path.name, outcome.reason)
            spool.discard(path)
    return adopted


async def serve(
    settings: InboxSettings,
    stop: asyncio.Event,
    ready: Callable[[int], None] = lambda port: None,
    opened: Callable[[Keeper | None], None] = lambda keeper: None,
    audit: NodeAudit | None = None,
) -> None:
    """Serve until `stop` is set. `ready(port)` is called once the node listens;
    `opened(keeper)` with the inbox's way in for other sources (a WADO-RS fetch) while it
    serves, and `opened(None)` as it closes. `audit`: where associations are recorded.
    Raises `InboxSettingInvalid`, `SpoolUnusable`, `IndexTooNew` or `PortInUse`."""
    settings.validated()
    spool = Spool.open(settings.spool)
    index = await InboxIndex.open(spool.index)
    try:
        adopted = await adopt_unindexed(spool, index)
        if adopted:
            LOGGER.info("Indexed %d image(s) kept before the last stop.", adopted)
        keeper = Keeper(spool, index, asyncio.get_running_loop())
        scp = StorageSCP(settings, keeper, audit)
        port = scp.start()
        try:
            callers = ", ".join(settings.callers) or "any calling AE title"
            LOGGER.info(
                "Listening as %s on port %d; taking images from %s.",
                settings.ae_title,
                port,
                callers,
            )
            opened(keeper)
            ready(port)
            await stop.wait()
        finally:
            opened(None)
            # Off the loop: a handler may be waiting for the loop to commit its image.
            await asyncio.to_thread(scp.stop)
    finally:
        await index.close()


def run(settings: InboxSettings, audit: NodeAudit | None = None) -> int:
    """The process around `serve`: log to stderr, say on stdout when the node listens, stop
    cleanly on SIGTERM or Ctrl+C."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Hostile or sloppy peers make pydicom and pynetdicom warn about every odd value they
    # decode; the inbox logs one line per refused image or association saying why.
    logging.getLogger("pynetdicom").setLevel(logging.ERROR)
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom\.")

    def ready(port: int) -> None:
        print(
            f"Receiving DICOM as {settings.ae_title} on port {port}; images go to "
            f"{settings.spool}. Stop with Ctrl+C.",
            flush=True,
        )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signal_number, stop.set)
        await serve(settings, stop, ready, audit=audit)

    asyncio.run(main())
    print("Stopped receiving DICOM.", flush=True)
    return 0
