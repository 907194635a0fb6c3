"""A reverse proxy in front of a relay, in the test's own event loop: it drops a connection
(no answer at all) before or after passing a request on, answers a gateway's 502 of its own
after passing it on ("bad-gateway": as nginx does when the relay's answer is lost on its side),
or runs a hook of the test's before passing it on (something happening while the request is in
flight)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web
from served_app import served

BAD_GATEWAY = "<html><body><h1>502 Bad Gateway</h1><hr><center>nginx</center></body></html>"


class FaultyLink:
    """A reverse proxy in front of the relay that drops a connection (no answer at all) when
    `drop` says so, before or after passing the request on."""

    def __init__(
        self,
        target: str,
        drop: Callable[[web.Request], str | None],
        before: Callable[[web.Request], Awaitable[None]] | None = None,
    ) -> None:
        self.target = target
        self.drop = drop
        self.before = before  # runs before a request is passed on
        self.dropped: list[tuple[str, str, str]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        when = self.drop(request)
        if when is not None:
            self.dropped.append((when, request.method, request.path))
        body = await request.read()
        if when == "before":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if self.before is not None:
            await self.before(request)
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("host", "content-length", "transfer-encoding")
        }
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method, self.target + request.path_qs, data=body, headers=headers
            ) as answer,
        ):
            data = await answer.read()
            kept = {
                k: v
                for k, v in answer.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "content-encoding")
            }
        if when == "bad-gateway":  # the relay did it; the proxy says it got no answer
            return web.Response(status=502, text=BAD_GATEWAY, content_type="text/html")
        if when == "after":  # the relay did it; the answer never arrives
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        return web.Response(status=answer.status, body=data, headers=kept)


@asynccontextmanager
async def faulty_link(link: FaultyLink) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", link.handle)
    async with served(app, access_log=None) as url:
        yield url
