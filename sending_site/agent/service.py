"""`trauma-relay sender --config FILE`: the whole sending agent in one process and one event
loop: the DICOM inbox (the Storage SCP the ER's PACS sends to) and the ER console with the
pushes it starts. SIGTERM or Ctrl+C stops it cleanly: the console stops taking requests,
running pushes are cancelled (they resume at the next start), the DICOM node closes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from sending_site.console.appkeys import FETCHES
from sending_site.console.fetches import Fetches
from sending_site.inbox.audited import NodeAudit
from sending_site.inbox.service import serve as serve_inbox
from sending_site.inbox.settings import InboxSettings
from sending_site.settings import SenderSettings, inbox_settings
from site_agent import agent_logs
from site_agent.console.appkeys import AUDIT

LOGGER = logging.getLogger(__name__)
READY = "Receiving DICOM as"  # the line the inbox alone prints too, once it listens


def dicom_node(
    settings: InboxSettings, fetches: Fetches, audit: NodeAudit | None = None
) -> Callable[[web.Application], AsyncIterator[None]]:
    """An aiohttp `cleanup_ctx` lifetime running the inbox on the console's loop, which the
    console's fetches keep into; the start fails (`PortInUse`, `SpoolUnusable`...) when the
    inbox cannot start. The fetches still running are cancelled before it closes."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        stop = asyncio.Event()
        listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def ready(port: int) -> None:
            print(
                f"{READY} {settings.ae_title} on port {port}; images go to {settings.spool}.",
                flush=True,
            )
            listening.set_result(port)

        task = asyncio.create_task(
            serve_inbox(settings, stop, ready, fetches.opened, audit), name="dicom-inbox"
        )
        waiting: set[asyncio.Future[Any]] = {task, listening}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # raises why it could not start
            raise RuntimeError("the DICOM inbox stopped at once")
        try:
            yield
        finally:
            await fetches.stop()
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return context


def agent_app(settings: SenderSettings) -> web.Application:
    """The console (with its push jobs) and, on the same loop, the DICOM inbox."""
    from sending_site.cli import SENDER
    from site_agent.commands import console_app

    inbox = inbox_settings(settings)
    app = console_app(SENDER, settings)
    # The inbox is up before the console answers and the jobs resume, and closes after them;
    # it starts after the state folder's lock is taken (the last two: the lock, the jobs).
    node = dicom_node(inbox, app[FETCHES], NodeAudit(app[AUDIT]))
    app.cleanup_ctx.insert(len(app.cleanup_ctx) - 1, node)
    return app


def run(settings: Any) -> int:
    """Run the agent until SIGTERM or Ctrl+C."""
    from sending_site.cli import SENDER
    from site_agent.console import serve

    # The inbox logs one line per refused image or association saying why.
    agent_logs.configure()
    agent_logs.warn_without_credential(SENDER.credential(settings))
    serve(agent_app(settings), settings.console)
    print("The sending agent stopped.", flush=True)
    return 0
