"""A spooled study as a push follows it while it is still arriving (cut-through).

    source = SpooledStudy(settings, study_instance_uid)
    try:
        await push(PushRequest(paths=[], source=source, ...), on_event)
    finally:
        await source.close()

It reads the inbox index read-only, beside the running agent. `stop()` ends the following
early: what has arrived is sent and the trauma center is told the study is incomplete. The
study is complete once no image of it has arrived for the stable age
(`InboxSettings.stable_after`) and, when a hospital PACS is set, every series the PACS holds
has arrived whole (`completeness`). A PACS that cannot
be asked is logged and the stable age alone decides, so a PACS outage does not hold a transfer
open for ever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from sending_site.inbox import errors
from sending_site.inbox.index import InboxIndex
from sending_site.inbox.keeping import Keeper
from sending_site.inbox.readiness import completeness_of
from sending_site.inbox.settings import InboxSettings
from sending_site.inbox.spool import Spool
from sending_site.source import Arrivals
from site_agent.local_time import how_long

LOGGER = logging.getLogger(__name__)

POLL_SECONDS = 1.0  # how long `arrivals` waits when nothing new has come
PACS_EVERY_SECONDS = 15.0  # how often the PACS is asked again while its counts differ


class SpooledStudy:
    """`source.StudySource` over the inbox spool and index. `clock` gives seconds since the
    epoch (the index's arrival times are such). With `follow_for` (seconds from the first
    `arrivals`), a study not complete by then is stopped as `stop()` does. With the `keeper` of
    the inbox running in this process, `arrivals` gives what its checks found in each file
    (`Keeper.described`), so the push does not parse it again."""

    def __init__(
        self,
        settings: InboxSettings,
        study_instance_uid: str,
        *,
        clock: Callable[[], float] = time.time,
        poll: float = POLL_SECONDS,
        follow_for: float | None = None,
        keeper: Keeper | None = None,
    ) -> None:
        self.settings = settings
        self.study_instance_uid = study_instance_uid
        self._spool = Spool(settings.spool)
        self._clock = clock
        self._poll = poll
        self._index: InboxIndex | None = None
        self._named: set[str] = set()  # spool ids already given
        # (when, last arrival then, whether the PACS held no more than had arrived)
        self._pacs_asked: tuple[float, float, bool] | None = None
        self._stop = asyncio.Event()
        self._follow_for = follow_for
        self._until: float | None = None  # when following stops, once asked first
        self._keeper = keeper

    def stop(self) -> None:
        """Staff stop following the study before it is complete: what has arrived is sent, and
        the trauma center is told the study is incomplete. Call from the push's event loop."""
        self._stop.set()

    async def arrivals(self) -> Arrivals:
        """Images that arrived since the last call; when there are none, waits up to the poll
        interval first. Raises `StudyNotSpooled` when the inbox holds no image of the study.

        An answer naming the last images of a study that is already as it will be called
        complete (stable, whole by the PACS) says it has `settled`, so staff are not told
        images are still arriving while the push uploads them; `complete` still waits for an
        answer that names nothing, so an image arriving meanwhile is sent."""
        index = await self._opened()
        kept = self._keeper.next_kept() if self._keeper is not None else None
        study = await index.study(self.study_instance_uid)
        if study is None:
            raise errors.StudyNotSpooled()
        now = self._clock()
        if self._until is None and self._follow_for is not None:
            self._until = now + self._follow_for
        stopping = self._stop.is_set() or (self._until is not None and now >= self._until)
        stable = study.seconds_since_last_image(now) >= self.settings.stable_after
        # After the study's arrival times: an image kept in between is named now, and the
        # study is not yet called complete on its account.
        held = await index.study_files(self.study_instance_uid)
        ids = [i for i in held if i not in self._named]
        self._named.update(ids)
        paths = tuple(self._spool.path_of(i) for i in ids)
        described = (
            tuple(d for d in map(self._keeper.described, paths) if d is not None)
            if self._keeper is not None
            else ()
        )
        if paths and not stopping:
            settled = (
                stable
                and await self._unchanged(index, study.last_arrival, len(held))
                and await self._whole(index, study.last_arrival, now, final=False)
            )
            return Arrivals(paths, complete=False, settled=settled, described=described)
        if stable and await self._whole(index, study.last_arrival, now, final=True):
            return Arrivals(paths, complete=True, described=described)
        if stopping:
            return Arrivals(paths, complete=False, stopped=True, described=described)
        left = self.settings.stable_after - study.seconds_since_last_image(now)
        wait = max(0.05, min(self._poll, left)) if left > 0 else self._poll
        if self._until is not None:
            wait = max(0.05, min(wait, self._until - now))
        await self._either(wait, kept)
        return Arrivals((), complete=False)

    async def _either(self, seconds: float, kept: asyncio.Event | None) -> None:
        """Wait up to `seconds` for `stop()` or, with the keeper in this process, for its next
        group commit (an image of any study: the index says whether it is of this one)."""
        waits = [asyncio.ensure_future(self._stop.wait())]
        if kept is not None:
            waits.append(asyncio.ensure_future(kept.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def _unchanged(self, index: InboxIndex, last_arrival: float, files: int) -> bool:
        """Whether no image was kept since the study was read (`last_arrival`) and its `files`
        listed: what was listed is every image it holds."""
        again = await index.study(self.study_instance_uid)
        return again is not None and again.last_arrival == last_arrival and again.instances == files

    async def _whole(
        self, index: InboxIndex, last_arrival: float, now: float, *, final: bool
    ) -> bool:
        """Whether the PACS (when one is set) holds no more of the study than arrived. Its
        last answer stands while nothing new arrived, for `PACS_EVERY_SECONDS`; a "yes" that is
        to close the transfer (`final`) is asked again."""
        if self.settings.pacs is None:
            return True
        if self._pacs_asked is not None:
            asked_at, arrival_then, whole = self._pacs_asked
            recent = arrival_then == last_arrival and now - asked_at < PACS_EVERY_SECONDS
            if recent and not (whole and final):
                return whole
        report = await completeness_of(self.settings, index, self.study_instance_uid, now)
        if not report.compared_with_pacs:
            LOGGER.warning(
                "The study's image counts could not be checked against the PACS (%s); it is "
                "called complete because no image arrived for %s.",
                report.pacs_problem,
                how_long(self.settings.stable_after),
            )
        whole = report.counts_match or not report.compared_with_pacs
        self._pacs_asked = (now, last_arrival, whole)
        return whole

    async def _opened(self) -> InboxIndex:
        if self._index is None:
            self._index = await InboxIndex.open(self._spool.index, read_only=True)
        return self._index

    async def close(self) -> None:
        if self._index is not None:
            await self._index.close()
            self._index = None
