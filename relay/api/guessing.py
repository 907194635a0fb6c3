"""The guessing throttle (`relay.throttle`) at the edge: an attempt from a client address (and
receiving site) that has failed too often lately is refused with 429 and Retry-After before
anything is looked up; a failed attempt is counted; the moment a key becomes throttled is
audited once (a security alert), not every refused attempt after it. An attempt counts as a
failure while it is under way (`attempt`), so attempts sent at once are held to the limit too.

Relay instances sharing a metadata store (PostgreSQL) count their failures in it: each attempt
first takes what every instance counted against its keys (`recent_guess_failures`), so N
instances allow what one does, not N times that. Attempts under way are counted only in the
process answering them, so a burst sent at once and spread over N instances may pass up to N
times a limit before its failures are counted (each transfer's ten-wrong-codes lock is exact
all the same). The embedded store keeps them as well, so a restarted relay goes on holding
back whoever guessed until the window ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from relay import errors
from relay.api.auth import at_desk, remote
from relay.appkeys import CONFIG, GUESSES, METADATA
from relay.metrics import METRICS
from relay.storage.models import Site
from relay.throttle import keys


def _keys(request: web.Request, site: Site | None) -> list[str]:
    return keys(remote(request), site.name if site else None)


@asynccontextmanager
async def attempt(request: web.Request, site: Site | None = None) -> AsyncIterator[None]:
    """Around an attempt: raise `Throttled` if it must wait, else count it as under way (as a
    failure, for the attempts that begin meanwhile) until it ends. Call `failed` within."""
    await _check(request, site)
    throttle, under_way = request.app[GUESSES], _keys(request, site)
    throttle.begin(under_way)  # no await since `_check` decided: nothing begins in between
    try:
        yield
    finally:
        throttle.ended(under_way)


async def _check(request: web.Request, site: Site | None) -> None:
    """Raise `Throttled` if this attempt must wait."""
    throttle, config = request.app[GUESSES], request.app[CONFIG]
    tried, now = _keys(request, site), config.clock()
    shared = await request.app[METADATA].recent_guess_failures(
        tried, now - config.guess_window, throttle.most_counted
    )
    for key, times in (shared or {}).items():
        throttle.known(key, times, now)
    wait = throttle.wait(tried, now)
    if wait > 0:
        request.app[METRICS].throttled.labels(kind="guessing").inc()
        engaged = [k.split(":", 1)[0] for k in tried if throttle.wait([k], now) > 0]
        raise errors.Throttled(wait, engaged)


async def failed(request: web.Request, site: Site | None = None) -> None:
    """Count a failed attempt (a wrong proof, a link that leads nowhere), within `attempt`."""
    throttle, now = request.app[GUESSES], request.app[CONFIG].clock()
    tried = _keys(request, site)
    # Engaged by this failure, counting failures only (this attempt is still under way).
    open_before = [k for k in tried if throttle.wait([k], now, under_way=False) == 0]
    throttle.failed(tried, now)
    since = now - request.app[CONFIG].guess_window
    await request.app[METADATA].count_guess_failure(tried, now, since)
    engaged = [
        k.split(":", 1)[0] for k in open_before if throttle.wait([k], now, under_way=False) > 0
    ]
    if engaged:
        async with at_desk(request, site) as d:
            await d.record("guessing-throttled", None, outcome="failure", limits=engaged)
