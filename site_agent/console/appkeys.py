"""Typed keys: the only way the console's handlers reach shared state (`web.AppKey`), and the
session a request carries (`web.RequestKey`, behind `session_of` and `user_of`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import jinja2
from aiohttp import web

from site_agent.accounts import Accounts
from site_agent.audit import AuditLog
from site_agent.console.agent import AgentPages
from site_agent.console.forwarded import client_address
from site_agent.console.sessions import Session, SessionBook
from site_agent.console.throttle import SignInThrottle
from site_agent.credential import AgentCredential
from site_agent.settings.sections import ConsoleSettings

SETTINGS = web.AppKey("console_settings", ConsoleSettings)
PAGES = web.AppKey("console_pages", AgentPages)
ADD_USER = web.AppKey("console_add_user", str)  # the command, named while no account exists
# The agent's relay credential, read when needed (a missing one named in its settings' words).
RELAY_CREDENTIAL = web.AppKey("console_relay_credential", AgentCredential)
SESSIONS = web.AppKey("console_sessions", SessionBook)
ACCOUNTS = web.AppKey("console_accounts", Accounts)
AUDIT = web.AppKey("console_audit", AuditLog)
THROTTLE = web.AppKey("console_throttle", SignInThrottle)
TEMPLATES = web.AppKey("console_templates", jinja2.Environment)
# Password checks at once (each takes 32 MiB and a tenth of a second on a worker thread).
VERIFYING = web.AppKey("console_verifying", asyncio.Semaphore)
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("console_clock")
# When each person last opened each page that shows patients (user, page, transfer id or ""):
# a JS-less page's own refreshes soon after are not new views (`page_views`).
VIEWS: web.AppKey[dict[tuple[str, str, str], float]] = web.AppKey("console_views")

_SESSION = web.RequestKey("console_session", Session)


def attach(request: web.Request, session: Session) -> None:
    request[_SESSION] = session


def session_of(request: web.Request) -> Session | None:
    """The session this request carries (signed in or not), if any."""
    return request.get(_SESSION)


def user_of(request: web.Request) -> str:
    """The signed-in user: every agent route runs only for one (checked before the handler)."""
    session = session_of(request)
    if session is None or session.user is None:
        raise RuntimeError("user_of() outside a signed-in request")
    return session.user


def address_of(request: web.Request) -> str:
    """Where the request comes from, for the sign-in throttle and the audit log: the peer, or
    behind a proxy listed in `console.trusted_proxies` the client it forwarded for."""
    return client_address(
        request.remote,
        # Every field of the header, in order: a proxy may add its own after the client's.
        ",".join(request.headers.getall("X-Forwarded-For", ())),
        request.app[SETTINGS].trusted_proxies,
    )
