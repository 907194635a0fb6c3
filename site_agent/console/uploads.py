"""Pages that take a file: the console refuses bodies over `app.MAX_BODY`, and a route that
takes uploads raises that limit for itself only (`takes_uploads`), before the CSRF check reads
its form. A larger body is refused with the calm "too large" page (`errors.TooLarge`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_LIMIT = "_console_upload_limit"


def takes_uploads(limit: int) -> Callable[[Handler], Handler]:
    """Mark a route's handler as taking request bodies up to `limit` bytes (put it under the
    route decorator's line)."""

    def mark(handler: Handler) -> Handler:
        setattr(handler, _LIMIT, limit)
        return handler

    return mark


@web.middleware
async def uploads_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    limit = getattr(request.match_info.handler, _LIMIT, None)
    if isinstance(limit, int) and request.method == "POST":
        request = request.clone(client_max_size=limit)
    return await handler(request)
