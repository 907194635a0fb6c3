"""Fetch a study from the hospital PACS over DICOMweb: WADO-RS (PS3.18 10.4), `GET
{base}/studies/{uid}` answered with `multipart/related; type="application/dicom"`, one whole
Part 10 file per part, in the transfer syntax the PACS holds it in (`transfer-syntax=*`: never
transcoded on the way).

The answer is read as it streams, one part at a time; each part goes through the same checks
and the same durable keep as a C-STORE (`Keeper.keep_file`, on threads of the fetch's own), with
several parts in flight so that they share group commits, so the study shows in the console as
its images arrive and a push can follow it. Memory is bounded: at most `PARTS_IN_FLIGHT` parts
and `BYTES_IN_FLIGHT` bytes wait to be kept (one bigger part goes alone), plus the part being
read (at most `max_instance_bytes`). A part that cannot be kept is counted and logged, and the
fetch goes on; if the PACS stops part way, what was kept stays kept.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import aiohttp

from sending_site.inbox import arrival, errors
from sending_site.inbox.keeping import Keeper
from sending_site.inbox.pacs import Retrieval
from sending_site.inbox.settings import MIB, InboxSettings, PacsWeb
from site_agent.credential import authorization_header
from site_agent.errors import AgentError

LOGGER = logging.getLogger(__name__)

PARTS_IN_FLIGHT = 8  # parts being written, checked and committed at once
BYTES_IN_FLIGHT = 64 * MIB
READ_CHUNK = 1 * MIB
ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'


@dataclass
class Progress:
    """How far a fetch is, for a page showing it while it runs."""

    received: int = 0
    failed: int = 0


class _InFlight:
    """Parts waiting to be kept: at most `parts`, and `size` bytes unless alone."""

    def __init__(self, parts: int, size: int) -> None:
        self._max_parts, self._max_bytes = parts, size
        self._parts = self._bytes = 0
        self._changed = asyncio.Condition()

    async def take(self, size: int) -> None:
        async with self._changed:
            await self._changed.wait_for(
                lambda: (
                    self._parts == 0
                    or (self._parts < self._max_parts and self._bytes + size <= self._max_bytes)
                )
            )
            self._parts += 1
            self._bytes += size

    async def give(self, size: int) -> None:
        async with self._changed:
            self._parts -= 1
            self._bytes -= size
            self._changed.notify_all()


def _web(settings: InboxSettings) -> PacsWeb:
    if settings.pacs_web is None:
        raise errors.InboxSettingInvalid(
            "No DICOMweb address is set for the hospital PACS (pacs_web.url), so the agent "
            "cannot fetch from it over DICOMweb."
        )
    return settings.pacs_web


def _refused(web: PacsWeb, status: int) -> errors.InboxError:
    if status == 404:
        return errors.PacsRefused(
            f"The PACS's DICOMweb service at {web} no longer has this study (HTTP 404): it "
            "may have been moved or merged. Search the PACS again."
        )
    if status in (401, 403):
        given = "the credential in its credential file" if web.credential_file else "no credential"
        return errors.PacsRefused(
            f"The PACS's DICOMweb service at {web} refused {given} (HTTP {status}). Ask the "
            "PACS administrator to allow this agent to retrieve studies (WADO-RS)."
        )
    return errors.PacsUnreachable(
        f"The PACS's DICOMweb service at {web} could not send the study (HTTP {status}). Try "
        "again; if it keeps happening, ask the PACS administrator."
    )


async def _read_part(part: aiohttp.BodyPartReader, limit: int) -> bytearray | None:
    """The part's bytes, or None (read to its end) when it holds more than `limit`."""
    data = bytearray()
    while chunk := await part.read_chunk(READ_CHUNK):
        if len(data) + len(chunk) > limit:
            while await part.read_chunk(READ_CHUNK):
                pass
            return None
        data += chunk
    return data


async def fetch_study(
    settings: InboxSettings, keeper: Keeper, uid: str, progress: Progress | None = None
) -> Retrieval:
    """Retrieve the study `uid` over WADO-RS into the inbox; returns once every part the PACS
    sent is kept or refused. Raises `PacsRefused` (404, 401/403, a credential file that cannot
    be read), `PacsUnreachable` (no connection, an error answer, the stream stopping part way:
    what was kept stays kept) or `InboxSettingInvalid` (no DICOMweb address)."""
    web = _web(settings)
    bad = arrival.bad_uid("Study Instance UID", uid)
    if bad:  # it goes into the address: nothing but a UID
        raise errors.PacsRefused(f"Cannot fetch: {bad.reason}.")
    progress = progress if progress is not None else Progress()
    try:
        headers = {"Accept": ACCEPT, **authorization_header(web.credential_file)}
    except AgentError as e:
        raise errors.PacsRefused(e.message) from e
    source = settings.pacs.ae_title if settings.pacs else ""
    wait = settings.pacs_timeout
    timeout = aiohttp.ClientTimeout(total=None, connect=wait, sock_connect=wait, sock_read=wait)
    in_flight = _InFlight(PARTS_IN_FLIGHT, BYTES_IN_FLIGHT)
    loop = asyncio.get_running_loop()
    # Threads of its own: a keep waits for the group commit, which needs the loop's default
    # executor (`Keeper._kept_durably`).
    threads = ThreadPoolExecutor(PARTS_IN_FLIGHT, thread_name_prefix="wado-keep")
    keeping: set[asyncio.Task[None]] = set()

    async def keep(data: bytearray) -> None:
        try:
            status, reason = await loop.run_in_executor(threads, keeper.keep_file, data, source)
        except Exception:
            LOGGER.exception("Could not keep an image fetched from %s.", web)
            status, reason = arrival.PROCESSING_FAILURE, ""
        finally:
            await in_flight.give(len(data))
        if status == arrival.SUCCESS:
            progress.received += 1
        else:
            progress.failed += 1
            if reason:
                LOGGER.warning("Refused an image fetched from %s: %s.", web, reason)

    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"{web.url}/studies/{uid}", headers=headers) as response,
        ):
            if response.status != 200:
                raise _refused(web, response.status)
            reader = aiohttp.MultipartReader.from_response(response)
            while (part := await reader.next()) is not None:
                if not isinstance(part, aiohttp.BodyPartReader):
                    await part.release()
                    progress.failed += 1
                    continue
                data = await _read_part(part, settings.max_instance_bytes)
                if data is None:
                    progress.failed += 1
                    LOGGER.warning(
                        "Refused an image fetched from %s: it is larger than "
                        "max_instance_bytes (%d).",
                        web,
                        settings.max_instance_bytes,
                    )
                    continue
                await in_flight.take(len(data))
                task = asyncio.create_task(keep(data))
                keeping.add(task)
                task.add_done_callback(keeping.discard)
    except aiohttp.ClientConnectorError as e:
        raise errors.PacsUnreachable(
            f"The PACS's DICOMweb service at {web} could not be reached ({e.os_error}). Check "
            "pacs_web.url in the agent's settings and the network."
        ) from e
    except (aiohttp.ClientError, TimeoutError, ValueError, AssertionError, RuntimeError) as e:
        # A dropped connection, a silent server, a body that is not multipart (aiohttp's
        # multipart reader raises ValueError, AssertionError or RuntimeError on bad framing).
        raise errors.PacsUnreachable(
            f"The PACS's DICOMweb service at {web} stopped sending the study part way "
            f"({type(e).__name__}: {e}). Fetch it again: the images already received are "
            "kept."
        ) from e
    finally:
        # What is in flight is kept (or refused) before the fetch says anything.
        if keeping:
            await asyncio.wait(set(keeping))
        threads.shutdown(wait=False)
    return Retrieval(completed=progress.received, failed=progress.failed, warnings=0)
