"""`/healthz` and the OpenAPI document."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate

from relay_api.plumbing import (
    Ctx,
)


@pytest.mark.asyncio
async def test_healthz(ctx: Ctx) -> None:
    r = await ctx.call("GET", "/healthz")
    assert (r.status, r.body) == (200, {"status": "ok"})


@pytest.mark.asyncio
async def test_openapi_document_is_valid_and_lists_every_route(ctx: Ctx) -> None:
    r = await ctx.call("GET", "/api/openapi.json")
    assert r.status == 200
    document = r.body
    validate(document)
    assert ctx.relay.app is not None
    served = set()
    for route in ctx.relay.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("formatter") or info.get("path")
        if isinstance(path, str) and route.method != "HEAD":
            served.add((route.method.lower(), path))
    api = {(m, p) for m, p in served if p.startswith("/api/")}
    assert len(api) >= 18
    documented = {(m, p) for p, ops in document["paths"].items() for m in ops}
    assert api <= documented
    assert ("get", "/healthz") in documented
    assert documented <= served
    public = {
        (m, p)
        for p, ops in document["paths"].items()
        for m, op in ops.items()
        if op.get("security") == []
    }
    assert {
        ("post", "/api/v1/authorizations"),
        ("get", "/api/openapi.json"),
        ("get", "/healthz"),
    } <= public
    # everything a site does needs its credential, and the document says so
    site_only = {
        (m, p)
        for m, p in documented
        if p.startswith(("/api/v1/transfers", "/api/v1/redemptions", "/api/v1/sites"))
    }
    assert len(site_only) >= 16
    assert site_only.isdisjoint(public)
    assert document["security"] == [{"siteCredential": []}]
