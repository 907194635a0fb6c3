"""Map relay errors to RFC 9457 problem documents, in one place."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from relay import errors, logs
from transfer_codes import wire

log = logging.getLogger("relay.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem(status: int, code: str, detail: str, **extra: object) -> web.Response:
    body: dict[str, object] = {
        "type": f"{wire.PROBLEM_TYPE}{code}",
        "title": code.replace("-", " "),
        "status": status,
        "detail": detail,
    }
    body.update(extra)
    return web.json_response(body, status=status, content_type="application/problem+json")


async def no_store(request: web.Request, response: web.StreamResponse) -> None:
    """No answer of the relay is kept by a browser or a proxy: they are about one transfer, at
    one moment, and some carry wrapped keys or the phone's sealed documents."""
    response.headers["Cache-Control"] = "no-store"


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.UploadConflict as e:
        return problem(e.status, e.code, e.detail, offset=getattr(e, "offset", None))
    except errors.Throttled as e:
        answer = problem(e.status, e.code, e.detail, retry_after=e.retry_after)
        answer.headers["Retry-After"] = str(e.retry_after)
        return answer
    except errors.RelayError as e:
        return problem(e.status, e.code, e.detail)
    except ConnectionResetError:
        # The client went away mid-request (aiohttp ends the body read with this): nothing was
        # changed, and nobody is left to answer; not an error of the relay's.
        log.info("client left during %s %s", request.method, logs.route_of(request))
        return problem(400, "client-left", "The connection closed before the request ended.")
    except web.HTTPException as e:
        if e.status >= 400 and e.content_type != "application/problem+json":
            return problem(e.status, "http", e.reason)
        raise
    except Exception:
        # The relay holds no PHI, so its own traceback is safe to log; the caller is told
        # nothing about internals.
        log.exception("unexpected error handling %s %s", request.method, logs.route_of(request))
        return problem(500, "internal", "The relay hit an unexpected error; nothing was changed.")
