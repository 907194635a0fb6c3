"""Serve the relay until SIGTERM (or SIGINT), then stop gracefully.

aiohttp's own graceful shutdown (`web.run_app`) marks every connection closing at once, and a
closing connection drops whatever bytes arrive next (aio-libs/aiohttp#2298): an upload that is
mid-body can then never finish, and waits out the timeout to be cut off. So the relay drains on
its own first: it stops listening, answers any new request on a kept-alive connection with 503
("stopping", Retry-After), closes each connection after its answer, and waits for the requests
under way, bodies and all, up to `server.shutdown_timeout_seconds`. Only then does aiohttp close
what is left (cutting off, unacknowledged, a request still running) and the app's cleanup close
the database. An upload is acknowledged only once durable, so one cut off loses nothing that was
acknowledged: the sender resumes from the last acknowledged offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web

from relay.api.problems import problem
from relay.appkeys import CONFIG, MANIFEST_EVENTS
from relay.logs import AccessLogger

log = logging.getLogger("relay")
RETRY_AFTER_SECONDS = 5
# What aiohttp still waits, after the drain, for a request it then cancels.
_CANCEL_GRACE_SECONDS = 1.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class InFlight:
    """The requests under way, and whether the relay is draining."""

    def __init__(self) -> None:
        self.count = 0
        self.draining = False
        self.idle = asyncio.Event()
        self.idle.set()

    def begin(self) -> None:
        self.count += 1
        self.idle.clear()

    def end(self) -> None:
        self.count -= 1
        if self.count == 0:
            self.idle.set()


IN_FLIGHT = web.AppKey("in_flight", InFlight)


@web.middleware
async def in_flight_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counts requests under way; while draining, a new one is answered 503 at once."""
    state = request.app[IN_FLIGHT]
    if state.draining:
        answer = problem(
            503, "stopping", "The relay is stopping for a restart; try again in a moment."
        )
        answer.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return answer
    state.begin()
    try:
        return await handler(request)
    finally:
        state.end()


STRICT_TRANSPORT = "max-age=31536000"  # a year; the hospital's other hosts are not included


async def strict_transport(request: web.Request, response: web.StreamResponse) -> None:
    """Browsers that reached the relay over HTTPS (a patient's phone) keep to HTTPS for it:
    a later link typed or rewritten as http:// is not sent in the clear. Set when the relay
    serves TLS itself or its public address is https:// (a TLS proxy in front)."""
    response.headers["Strict-Transport-Security"] = STRICT_TRANSPORT


async def close_while_draining(request: web.Request, response: web.StreamResponse) -> None:
    """While draining, no connection is kept alive for another request."""
    if request.app[IN_FLIGHT].draining:
        response.force_close()
        response.headers["Connection"] = "close"  # aiohttp chose this header before the hook


async def _drain(app: web.Application) -> None:
    state = app[IN_FLIGHT]
    state.draining = True
    timeout = app[CONFIG].shutdown_timeout
    log.info(
        "stopping: no new connections; %d request(s) under way get up to %g s to finish",
        state.count,
        timeout,
    )
    for event in app[MANIFEST_EVENTS].values():
        event.set()  # receivers waiting for news of a transfer are answered now
    try:
        await asyncio.wait_for(state.idle.wait(), timeout)
    except TimeoutError:
        log.warning(
            "%d request(s) still under way after %g s are cut off, unacknowledged",
            state.count,
            timeout,
        )


async def serve(
    app: web.Application,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    on_listening: Callable[[], None],
) -> None:
    """Serve `app` until SIGTERM or SIGINT, then drain and stop. OSError if it cannot listen."""
    runner = web.AppRunner(
        app,
        access_log_class=AccessLogger,
        access_log=logging.getLogger("relay.access"),
        shutdown_timeout=_CANCEL_GRACE_SECONDS,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        on_listening()
        try:
            await stop.wait()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(signum)
        await site.stop()  # no new connections from here on
        await _drain(app)
    finally:
        await runner.cleanup()
