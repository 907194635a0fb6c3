"""Store each image into the PACS as soon as it is verified (`redeem --as-they-arrive`),
instead of once the whole study is (the default).

The order stays safe: the preview's question is answered and the patient reconciled with the
PACS (`opening`, run once from the manifest's summary) before any image is stored; each image
is stored only once it is verified and belongs to the summary's patient (`staging.check_object`,
by the association that stores it once the store is open), and one that carries a study UID not
checked yet waits for that check (`check_study`). What cannot be known before the last image
arrives (mixed patients further on, a missing image, a sender that stops) can then only stop
the storing: `abort` says how many images were stored, and `incomplete_in_pacs` rewrites the
failure to say the PACS copy is incomplete.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Generic, TypeVar

from receiving_site import pacs, staging, stow
from transfer_codes.manifest import StudySummary

T = TypeVar("T")


@dataclass(frozen=True)
class Opened(Generic[T]):
    """What `opening` gives: the store that takes the images, and `context` for the caller
    (the request with the staff's answer applied, the local record)."""

    store: pacs.StoreAsVerified | stow.StowAsVerified
    context: T


class StoringAsTheyArrive(Generic[T]):
    """Feeds verified images to a `pacs.StoreAsVerified` (C-STORE) or a
    `stow.StowAsVerified` (STOW-RS) once `opening` is done; images
    verified before that wait here (the downloads go on)."""

    def __init__(
        self,
        summary: StudySummary,
        opening: Awaitable[Opened[T]],
        check_study: Callable[[T, staging.StagedObject], Awaitable[None]],
    ) -> None:
        self._summary = summary
        self._check_study = check_study
        self._checked = {summary.study_instance_uid, ""}
        self._checking = asyncio.Lock()
        self._check = functools.partial(staging.check_header, summary=summary)
        self._waiting: list[staging.StagedObject] = []
        self._opened: Opened[T] | None = None
        self._opening = asyncio.ensure_future(self._open(opening))

    async def _open(self, opening: Awaitable[Opened[T]]) -> Opened[T]:
        opened = await opening
        self._opened = opened
        for item in self._waiting:
            opened.store.put(item)
        self._waiting.clear()
        return opened

    async def add(self, item: staging.StagedObject) -> None:
        """Store `item` (verified) once it is known to be the summary's patient's and its study
        UID was checked. Raises `IdentityMismatch` or `VerificationFailed` (it is not stored),
        or the failure of the opening or of the storing so far. Once the store is open, an image
        of a study UID checked already is checked by the thread that stores it, before
        anything else (`pacs.StoreAsVerified.put`): its failure is then raised by a later
        `add`, or by `finish`."""
        uid = item.entry.study_instance_uid
        header = None
        if self._opened is None or uid not in self._checked:  # checked now, as ever
            header = await asyncio.to_thread(staging.check_header, item, self._summary)
        if uid not in self._checked:
            opened = await self.opened()
            async with self._checking:
                if uid not in self._checked:
                    await self._check_study(opened.context, item)
                    self._checked.add(uid)
        self.raise_if_failed()
        if self._opened is None:
            self._waiting.append(item)  # its header is not kept: the wait may be long
        elif header is not None:
            self._opened.store.put(item, header)
        else:
            self._opened.store.put(item, check=self._check)

    @property
    def summary(self) -> StudySummary:
        return self._summary

    @property
    def context(self) -> T | None:
        """The opening's context, once it is done."""
        return None if self._opened is None else self._opened.context

    async def opened(self) -> Opened[T]:
        """Waits for the opening (the staff's answer, the reconciliation); raises its failure."""
        return await asyncio.shield(self._opening)

    def raise_if_failed(self) -> None:
        """Raises the opening's failure, or the storing's, once there is one."""
        if self._opening.done() and not self._opening.cancelled():
            failure = self._opening.exception()
            if failure is not None:
                raise failure
        if self._opened is not None and self._opened.store.sending.failure is not None:
            raise self._opened.store.sending.failure

    async def finish(self) -> tuple[pacs.PacsDelivery, T]:
        """After the last image was added: waits until every one is stored; returns the
        delivery. Raises the first failure."""
        opened = await self.opened()
        opened.store.close()
        return await asyncio.to_thread(opened.store.finish), opened.context

    def stop(self) -> None:
        """Store nothing more, without waiting (the redemption is being cancelled): the
        associations (or posts) end after the image (or batch) being sent."""
        self._opening.cancel()
        if self._opened is not None:
            self._opened.store.stop()

    async def abort(self) -> int:
        """Store nothing more (the image being sent finishes); returns how many were stored."""
        if not self._opening.done():
            self._opening.cancel()
        await asyncio.wait([self._opening])
        if not self._opening.cancelled():
            self._opening.exception()  # the failure, if any, is the caller's to report
        if self._opened is None:
            return 0
        self._opened.store.stop()
        with suppress(Exception):  # the failure is the caller's to report
            await asyncio.to_thread(self._opened.store.finish)
        return self._opened.store.stored


_NOTHING_STORED = (
    (re.compile(r"\s*Nothing was stored( in the PACS)?\."), ""),
    (re.compile(r"Nothing was stored; a"), "A"),
    (re.compile(r"[;,] nothing was stored\."), "."),
    (re.compile(r"\s*\d+ images were stored\."), ""),  # `PacsRefused`'s count, said below
    (re.compile(r"\s*\d+ images were stored; c"), " C"),  # likewise, STOW-RS's
)


def incomplete_in_pacs(message: str, stored: int, total: int) -> str:
    """`message` (a failure that stopped the storing) without its "Nothing was stored", and
    saying that `stored` of the `total` images listed so far are in the PACS."""
    for pattern, replacement in _NOTHING_STORED:
        message = pattern.sub(replacement, message)
    images = "image was" if stored == 1 else "images were"
    return (
        f"{message} {stored} of the {total} {images} already stored in the PACS before this was "
        "found, so the study there is INCOMPLETE: tell radiology not to rely on it as the whole "
        "study."
    )
