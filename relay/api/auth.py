"""Site authentication: `Authorization: Bearer <credential>`, stored on the relay as a digest."""

from __future__ import annotations

from aiohttp import web

from relay import errors
from relay.appkeys import METADATA
from relay.storage.models import Site
from transfer_codes.tokens import token_digest


async def require_site(request: web.Request, role: str | None = None) -> Site:
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise errors.NotAuthenticated()
    try:
        digest = token_digest(credential.strip())
    except ValueError as e:
        raise errors.NotAuthenticated() from e
    async with request.app[METADATA].transaction() as tx:
        site = await tx.site_by_credential(digest)
    if site is None:
        raise errors.NotAuthenticated("That site credential is not known to this relay.")
    if role is not None and site.role != role:
        raise errors.NotPermitted(f"Only {role} sites may do that; this is a {site.role} site.")
    return site


def remote(request: web.Request) -> str:
    return request.remote or "unknown"
