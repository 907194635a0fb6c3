"""Assemble a console: the framework's middlewares, sign-in and assets, then the agent's pages;
lifetimes in `cleanup_ctx`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from site_agent.accounts import Accounts
from site_agent.audit import AuditLog
from site_agent.console import guard, signin
from site_agent.console.agent import AgentPages, AgentSettings
from site_agent.console.appkeys import (
    ACCOUNTS,
    ADD_USER,
    AUDIT,
    CLOCK,
    PAGES,
    RELAY_CREDENTIAL,
    SESSIONS,
    SETTINGS,
    TEMPLATES,
    THROTTLE,
    VERIFYING,
    VIEWS,
)
from site_agent.console.pages import environment
from site_agent.console.sessions import SessionBook
from site_agent.console.throttle import SignInThrottle
from site_agent.console.uploads import uploads_middleware
from site_agent.credential import AgentCredential
from site_agent.errors import SettingInvalid
from site_agent.settings.sections import ConsoleSettings

log = logging.getLogger("site_agent.console")

STATIC = Path(__file__).with_name("static")
SWEEP_INTERVAL = 60.0  # seconds between drops of ended sessions
MAX_BODY = 1024 * 1024  # bytes; a page that takes uploads raises it for its own route
CONCURRENT_PASSWORD_CHECKS = 2


async def _folder(app: web.Application) -> AsyncIterator[None]:
    app[ACCOUNTS].folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    yield


async def _sweeper(app: web.Application) -> AsyncIterator[None]:
    async def sweep() -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            for ended in app[SESSIONS].sweep(app[CLOCK]()):
                await app[AUDIT].arecord(
                    "session-expired", who=ended.user, where="-", why=ended.why.value
                )

    task = asyncio.create_task(sweep())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _no_icon(request: web.Request) -> web.Response:
    return web.Response(status=204)


def make_app(
    pages: AgentPages,
    settings: AgentSettings,
    *,
    folder: Path,
    add_user: str,
    credential: AgentCredential,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The console of an agent: sign-in, sessions, CSRF, the page frame and error pages, the
    assets, and the agent's `pages` behind sign-in. Accounts and the audit log are kept in
    `folder` (the agent's part of its state folder); `add_user` is the command that adds an
    account; `credential` is the agent's relay credential, as its settings name it. `clock`
    (seconds since the epoch) is for tests that move time."""
    app = web.Application(
        middlewares=[
            guard.errors_middleware,
            uploads_middleware,
            guard.sessions_middleware,
            guard.forms_middleware,
        ],
        client_max_size=MAX_BODY,
    )
    app[SETTINGS] = settings.console
    app[PAGES] = pages
    app[ADD_USER] = add_user
    app[RELAY_CREDENTIAL] = credential
    app[CLOCK] = clock
    app[SESSIONS] = SessionBook(settings.console.idle_timeout)
    app[THROTTLE] = SignInThrottle()
    app[ACCOUNTS] = Accounts(folder)
    app[AUDIT] = AuditLog(folder, clock)
    app[TEMPLATES] = environment(pages.templates)
    app[VERIFYING] = asyncio.Semaphore(CONCURRENT_PASSWORD_CHECKS)
    app[VIEWS] = {}
    app.on_response_prepare.append(guard.security_headers)
    app.cleanup_ctx.append(_folder)
    app.cleanup_ctx.append(_sweeper)
    app.router.add_routes(signin.routes)
    app.router.add_static("/static/", STATIC)
    app.router.add_get("/favicon.ico", _no_icon)
    app.router.add_routes(pages.routes)
    if pages.setup is not None:
        pages.setup(app, settings)
    return app


def tls_context(settings: ConsoleSettings) -> ssl.SSLContext | None:
    if settings.tls_certificate is None or settings.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.tls_certificate, settings.tls_key)
    except (OSError, ssl.SSLError) as e:
        raise SettingInvalid(
            f"console.tls_certificate: {settings.tls_certificate} and {settings.tls_key} could "
            f"not be loaded as a PEM certificate and its key ({e})."
        ) from e
    return context


def address(settings: ConsoleSettings) -> str:
    """Where staff open the console."""
    if settings.public_url:
        return settings.public_url
    scheme = "https" if settings.tls_certificate else "http"
    return f"{scheme}://{settings.listen}"


def serve(app: web.Application, settings: ConsoleSettings) -> None:
    """Run the console until interrupted."""
    log.info("%s at %s", app[PAGES].title, address(settings))
    if not app[ACCOUNTS].all():
        log.warning("no one can sign in yet: add an account with %s", app[ADD_USER])
    web.run_app(
        app,
        host=settings.listen.host,
        port=settings.listen.port,
        ssl_context=tls_context(settings),
        print=None,
        access_log_format='%a "%r" %s %b',  # no referrer, no user agent
    )
