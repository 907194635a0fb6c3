"""A notice for the page a POST redirects to (post, redirect, get: a reload does not send the
form again): kept on the server in the poster's session, by the page's path, and shown by the
next GET of that page from the same session within `NOTICE_SECONDS`, once. Never in the URL,
so that what it says (a record number, a patient's study) stays out of addresses, history and
access logs; another person's session never sees it."""

from __future__ import annotations

from aiohttp import web

from site_agent.console.appkeys import CLOCK, session_of

NOTICE_SECONDS = 60.0  # a redirect not followed by then leaves nothing to show later
MAX_NOTICES = 16  # per session: the oldest go first


def leave(request: web.Request, path: str, notice: object) -> None:
    """Keep `notice` for the next GET of `path` by this request's session (none: not kept)."""
    session = session_of(request)
    if session is None:
        return
    session.notices.pop(path, None)
    session.notices[path] = (request.app[CLOCK](), notice)
    while len(session.notices) > MAX_NOTICES:
        del session.notices[next(iter(session.notices))]


def take(request: web.Request) -> object | None:
    """The notice left for this request's path by its session, removed; None if there is none,
    or it is older than `NOTICE_SECONDS`."""
    session = session_of(request)
    if session is None:
        return None
    kept = session.notices.pop(request.path, None)
    if kept is None:
        return None
    at, notice = kept
    return notice if 0 <= request.app[CLOCK]() - at <= NOTICE_SECONDS else None
