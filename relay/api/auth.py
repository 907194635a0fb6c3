"""Site authentication: `Authorization: Bearer <credential>`, stored on the relay as a digest.

A refused credential is audited (110114, failure) with where it came from, never with what was
presented: a near-miss credential in the audit trail would be a secret in the audit trail. An
accepted one is audited too (110114, success), but once per `SIGN_IN_INTERVAL` for each site and
client address, as a sign-in would be: not once for every chunk of an upload."""

from __future__ import annotations

import functools
from contextlib import AbstractAsyncContextManager

from aiohttp import web

from relay import errors
from relay.addresses import client_address, throttled_as
from relay.appkeys import CONFIG, METADATA, REFUSALS, SIGN_INS, SUPPRESSED
from relay.desk.visit import UNKNOWN, Caller, Desk, visit
from relay.metrics import METRICS
from relay.storage.models import Site
from transfer_codes.tokens import token_digest

SIGN_IN_INTERVAL = 3600.0  # seconds between two records of one site's accepted credential
MAX_SIGN_INS = 10_000  # (site, address) pairs remembered; then the relay starts afresh
MAX_SUPPRESSED = 10_000  # addresses with refusals not yet audited; then the oldest is summed up


async def require_site(request: web.Request, role: str | None = None) -> Site:
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        await _refused(request, "missing")
        raise errors.NotAuthenticated()
    try:
        digest = token_digest(credential.strip())
    except ValueError as e:
        await _refused(request, "malformed")
        raise errors.NotAuthenticated() from e
    async with at_desk(request) as d:
        # Looked up by its digest, never compared as a secret: as good as constant time.
        site = await d.tx.site_by_credential(digest, d.now)
        if site is None:
            await _record_refusal(d, request, "unknown")
        elif site.disabled_at is not None:
            await _record_refusal(d, request, "disabled")
        elif _sign_in_due(request, site, d.now):
            signed_in = Desk(d.tx, Caller(site.name, site.role, d.caller.remote), d.now)
            await signed_in.record("site-authentication", None, method=request.method)
    if site is None:
        raise errors.NotAuthenticated("That site credential is not known to this relay.")
    if site.disabled_at is not None:
        raise errors.SiteDisabled()
    if role is not None and site.role != role:
        raise errors.NotPermitted(f"Only {role} sites may do that; this is a {site.role} site.")
    return site


def _sign_in_due(request: web.Request, site: Site, now: float) -> bool:
    """Is this accepted credential to be audited: the first from its address in
    `SIGN_IN_INTERVAL` (or since the relay started)? Marks it as audited if so."""
    seen = request.app[SIGN_INS]
    key = (site.name, remote(request))
    last = seen.get(key)
    if last is not None and 0 <= now - last < SIGN_IN_INTERVAL:
        return False
    if len(seen) >= MAX_SIGN_INS:
        seen.clear()
    seen[key] = now
    return True


async def _refused(request: web.Request, credential: str) -> None:
    async with at_desk(request) as d:
        await _record_refusal(d, request, credential)


async def _record_refusal(d: Desk, request: web.Request, credential: str) -> None:
    """Audit a refused site credential: `credential` says whether it was missing, malformed,
    unknown or disabled. The route is its template (`/api/v1/transfers/{transfer_id}`), so
    nothing the caller chose reaches the record. A client address refused more often than
    `refusals_audited_per_minute` is not recorded once per request: the refusals in between are
    counted and the next record from that address says how many (`suppressed_before`), so a
    flood of bad requests cannot grow the append-only trail without bound. Past
    `MAX_SUPPRESSED` addresses so counted, the one counted longest gets a record of its own
    (`suppressed`: how many it stands for)."""
    request.app[METRICS].refused_credentials.inc()
    address = throttled_as(remote(request))  # an IPv6 client by its /64
    damper, suppressed = request.app[REFUSALS], request.app[SUPPRESSED]
    key = [f"address:{address}"]
    if damper.wait(key, d.now) > 0:
        if address not in suppressed and len(suppressed) >= MAX_SUPPRESSED:
            await _sum_up_oldest(d, suppressed)
        suppressed[address] = suppressed.get(address, 0) + 1
        return
    damper.failed(key, d.now)
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else ""
    record = functools.partial(
        d.record,
        "site-authentication",
        None,
        outcome="failure",
        credential=credential,
        method=request.method,
        route=route,
    )
    if address in suppressed:
        await record(suppressed_before=suppressed.pop(address))
    else:
        await record()


async def _sum_up_oldest(d: Desk, suppressed: dict[str, int]) -> None:
    """Audit the refusals counted longest for an address that has not been back since (one
    record, `suppressed` saying how many), so that addresses sending a few bad requests each
    and never coming back cannot grow the count without bound."""
    address = next(iter(suppressed))
    stranger = Desk(d.tx, Caller(UNKNOWN, UNKNOWN, address), d.now)
    await stranger.record(
        "site-authentication", None, outcome="failure", suppressed=suppressed.pop(address)
    )


def remote(request: web.Request) -> str:
    """The client's address (behind a trusted proxy, the one it forwarded for)."""
    return client_address(
        request.remote,
        # Every field, in order: a proxy may add its own field after one the client wrote.
        ",".join(request.headers.getall("X-Forwarded-For", [])),
        request.app[CONFIG].trusted_proxy_networks,
    )


def at_desk(request: web.Request, site: Site | None = None) -> AbstractAsyncContextManager[Desk]:
    """A desk visit for this request, as `site` (or as an unknown caller: the patient's phone),
    at the relay's time now."""
    name, role = (site.name, site.role) if site else (UNKNOWN, UNKNOWN)
    caller = Caller(name, role, remote(request))
    return visit(request.app[METADATA], caller, request.app[CONFIG].clock())
