"""The console's middlewares, outermost first:

- `errors_middleware`: anything a handler raises becomes the calm error page (the agent's own
  errors with their sentence, anything unforeseen with a plain one and a log line), never a
  stack trace;
- `sessions_middleware`: finds the request's session by its cookie; every path but sign-in and
  the assets needs a signed-in user (else: to the sign-in page, saying why a session ended); a
  removed account's sessions end, and a user's begun before their password was changed;
- `forms_middleware`: every POST (and PUT, PATCH, DELETE) must carry its session's CSRF token,
  in the form field `csrf_token` or the `X-CSRF-Token` header, and no foreign `Origin`.

And `security_headers` on every response (an `on_response_prepare` signal).
"""

from __future__ import annotations

import hmac
import logging
from urllib.parse import urlencode, urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler

from site_agent.console import errors
from site_agent.console.appkeys import (
    ACCOUNTS,
    AUDIT,
    CLOCK,
    PAGES,
    SESSIONS,
    SETTINGS,
    address_of,
    attach,
    session_of,
)
from site_agent.console.pages import CSRF_FIELD, error_page
from site_agent.console.sessions import Ended, Expired
from site_agent.errors import AgentError, RelayRefused, RelayUnreachable

log = logging.getLogger("site_agent.console")

COOKIE = "trauma_relay_console"
CSRF_HEADER = "X-CSRF-Token"
# A page refreshing itself (live progress) sends this header, so that it does not keep alive a
# session nobody is using.
REFRESH_HEADER = "X-Console-Refresh"
PUBLIC = ("/sign-in", "/static/", "/favicon.ico")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
CANNOT = "This could not be done"
# Why the sessions of a removed account end: not an `Ended`, as they are not remembered (their
# other browsers are sent to sign in without a reason).
REMOVED = "removed"
_HTTP_ERRORS: dict[int, type[errors.ConsoleError]] = {
    400: errors.BadForm,
    404: errors.PageNotFound,
    405: errors.MethodRefused,
    413: errors.TooLarge,
}


def is_public(path: str) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in PUBLIC)


def own_origin(request: web.Request) -> str:
    """The console's origin: from `console.public_url` behind a proxy, else as reached."""
    public = request.app[SETTINGS].public_url
    if public:
        parts = urlsplit(public)
        return f"{parts.scheme}://{parts.netloc}".lower()
    return f"{request.scheme}://{request.host}".lower()


def set_cookie(request: web.Request, response: web.StreamResponse, session_id: str) -> None:
    response.set_cookie(
        COOKIE,
        session_id,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure or request.app[SETTINGS].https,
    )


def to_sign_in(request: web.Request, ended: str | None = None) -> web.HTTPSeeOther:
    """A redirect to the sign-in page, which comes back here afterwards (a page, not a POST).
    A POST (a button: Send, Revoke, break-glass) is not done, and the sign-in page says so
    (`undone`), so that nobody believes it happened."""
    query: dict[str, str] = {}
    if ended:
        query["ended"] = ended
    if request.method in SAFE_METHODS:
        if request.path_qs != "/":
            query["next"] = request.path_qs
    elif request.path != "/sign-out":  # signing out needs no doing again
        query["undone"] = "1"
    return web.HTTPSeeOther("/sign-in" + (f"?{urlencode(query)}" if query else ""))


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        known = _HTTP_ERRORS.get(e.status)
        if known is not None:
            return error_page(request, known())
        return error_page(request, errors.ConsoleError(), status=e.status)
    except errors.ConsoleError as e:
        return error_page(request, e)
    except Exception as e:
        return _known_or_logged(request, e)


def _known_or_logged(request: web.Request, error: Exception) -> web.Response:
    """The agent's own errors and the site agent's (the relay, a setting, the accounts) with
    their sentence; anything else with the plain one, and its traceback in the log."""
    pages = request.app[PAGES]
    for cls, status in pages.errors:
        if isinstance(error, cls):
            sentence = pages.sentence(error)
            return error_page(request, None, sentence=sentence, status=status, title=CANNOT)
    if isinstance(error, AgentError):
        log.warning("console: %s %s: %s", request.method, request.path, error.detail)
        relay = isinstance(error, RelayUnreachable | RelayRefused)
        status = 502 if relay else 500
        return error_page(request, None, sentence=error.for_console, status=status, title=CANNOT)
    log.error("console: %s %s failed", request.method, request.path, exc_info=error)
    return error_page(request, errors.ConsoleError())


@web.middleware
async def sessions_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    app, public = request.app, is_public(request.path)
    session_id = request.cookies.get(COOKIE, "")
    found = (
        app[SESSIONS].find(session_id, app[CLOCK](), activity=REFRESH_HEADER not in request.headers)
        if session_id
        else None
    )
    if isinstance(found, Expired):
        if found.first:
            await app[AUDIT].arecord(
                "session-expired", who=found.user, where=address_of(request), why=found.why.value
            )
        if not public:
            raise to_sign_in(request, ended=found.why.value)
        found = None
    account = None
    if found is not None and found.user is not None:
        account = app[ACCOUNTS].find(found.user)
        if account is None:  # the account was removed: its sessions end now
            for ended in app[SESSIONS].end_user(found.user):
                await app[AUDIT].arecord(
                    "session-expired",
                    who=found.user,
                    where=address_of(request) if ended is found else "-",
                    why=REMOVED,
                )
            if not public:
                raise to_sign_in(request, ended=REMOVED)
            found = None
    if found is not None and account is not None and found.started < account.password_changed_at:
        # A new password: every session begun with the old one ends now, this one included.
        changed = account.password_changed_at
        for ended in app[SESSIONS].end_begun_before(account.name, changed, app[CLOCK]()):
            await app[AUDIT].arecord(
                "session-expired",
                who=account.name,
                where=address_of(request) if ended is found else "-",
                why=Ended.PASSWORD_CHANGED.value,
            )
        if not public:
            raise to_sign_in(request, ended=Ended.PASSWORD_CHANGED.value)
        found = None
    if found is not None:
        attach(request, found)
    if not public and (found is None or found.user is None):
        raise to_sign_in(request)
    return await handler(request)


@web.middleware
async def forms_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    # The sign-in form checks its own token, to show the form again rather than an error page.
    unsafe = request.method not in SAFE_METHODS and request.path != "/sign-in"
    if unsafe and not await form_is_ours(request):
        session = session_of(request)
        await request.app[AUDIT].arecord(
            "form-refused",
            who=(session.user if session else None) or "-",
            where=address_of(request),
            outcome="refused",
            path=request.path,
        )
        raise errors.FormExpired()
    return await handler(request)


async def form_is_ours(request: web.Request) -> bool:
    """Whether an unsafe request carries its session's CSRF token and no foreign origin."""
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() != own_origin(request):
        return False
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return False
    session = session_of(request)
    if session is None:
        return False
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.content_type in FORM_TYPES:
        field = (await request.post()).get(CSRF_FIELD)
        sent = field if isinstance(field, str) else None
    return sent is not None and hmac.compare_digest(sent.encode(), session.csrf_token.encode())


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    # Not "no-referrer": with it, browsers send `Origin: null` on form posts, and the forms
    # check the origin. Addresses on the console hold no secrets; none leave for another site.
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    if not request.path.startswith("/static/"):
        # Pages show patients' details: never kept in a browser cache or behind the back button.
        response.headers["Cache-Control"] = "no-store"
