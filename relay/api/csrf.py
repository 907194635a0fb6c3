"""Cross-site request forgery protection for what the patient's phone posts.

Double-submit cookie: `GET /authorize` sets a random `tr_csrf` cookie (SameSite=Strict, HttpOnly)
and puts the same value in the page; every POST from the page sends it back in `X-CSRF-Token`.
A page on another site can neither read the value nor make the browser send the cookie. An
`Origin` header, when present, must be the relay's own. A browser that refuses cookies sends
none: its POST is taken on its `Origin` (ours) and the custom header, which another site's page
cannot send without a CORS preflight the relay never answers. The relay stores nothing for this, so
opening the page (or a link previewer fetching it) changes no state.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from aiohttp import web

from relay.appkeys import CONFIG
from relay.errors import NotPermitted
from transfer_codes.wire import CSRF_TOKEN, Problem

COOKIE = "tr_csrf"
HEADER = CSRF_TOKEN
TOKEN_BYTES = 32
_MAX_TOKEN_CHARS = 64


class CsrfRefused(NotPermitted):
    """This page has gone stale. Open the link again (scan the QR code once more) and retry."""

    code = Problem.CSRF


def own_origin(request: web.Request) -> str:
    """The relay's origin: from `public_url` when configured (behind a proxy), else as reached."""
    public = request.app[CONFIG].public_url
    if public:
        parts = urlsplit(public)
        return f"{parts.scheme}://{parts.netloc}".lower()
    return f"{request.scheme}://{request.host}".lower()


def is_https(request: web.Request) -> bool:
    return own_origin(request).startswith("https://")


def _usable(value: str) -> bool:
    return 0 < len(value) <= _MAX_TOKEN_CHARS and value.isascii()


def page_token(request: web.Request) -> str:
    """The token for a page being served: the browser's existing one (so two open tabs keep
    working) or a fresh one. Nothing is stored on the relay."""
    existing = request.cookies.get(COOKIE, "")
    if _usable(existing):
        return existing
    return secrets.token_urlsafe(TOKEN_BYTES)


def set_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=is_https(request),
    )


def came_from_browser(request: web.Request) -> bool:
    """Whether a browser sent this request. Forgery needs a browser, and browsers always mark
    their POSTs with `Origin` (and `Sec-Fetch-Site`); command-line clients send neither."""
    return any(h in request.headers for h in ("Origin", "Sec-Fetch-Site", "Cookie", HEADER))


def check(request: web.Request) -> None:
    """Refuse (403) unless any `Origin` is our own and the header matches the cookie, or, from a
    browser that sent no cookie, the header is there and `Origin` names us."""
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() != own_origin(request):
        raise CsrfRefused()
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        raise CsrfRefused()
    header = request.headers.get(HEADER, "")
    if not _usable(header):
        raise CsrfRefused()
    if COOKIE not in request.cookies:
        # A browser that keeps no cookies (set to keep no site data) never sends one back.
        # It still names the page's origin: a page on another site can neither send its
        # own origin as ours nor add the header without asking first (CORS), which the relay
        # never grants. Without an origin, nothing shows the request came from our page.
        if origin is None:
            raise CsrfRefused()
        return
    cookie = request.cookies[COOKIE]
    if not (_usable(cookie) and hmac.compare_digest(cookie.encode(), header.encode())):
        raise CsrfRefused()
