"""The `ctx` fixture: a relay on port 0 with a fake clock, and an HTTP session to it; once for
each object store (`object_backend`: the data directory's folder, an S3 bucket)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from relay_harness import FakeClock, running_relay

from relay_api.plumbing import Ctx, StoredObjects


@pytest.fixture(params=["files", "s3"])
def object_backend(request: pytest.FixtureRequest, tmp_path: Path) -> StoredObjects:
    """Where the relay keeps sealed objects: its folder, or a prefix of its own in a bucket of
    the session's local S3 server."""
    folder = tmp_path / "relay" / "objects"
    if request.param == "files":
        return StoredObjects(folder)
    bucket = request.getfixturevalue("s3_bucket")
    return StoredObjects(folder, bucket, bucket.new_prefix())


@pytest_asyncio.fixture
async def ctx(tmp_path: Path, object_backend: StoredObjects) -> AsyncIterator[Ctx]:
    clock = FakeClock()
    settings = {}
    if object_backend.bucket is not None:
        settings = object_backend.bucket.settings(object_backend.prefix)
    async with (
        running_relay(tmp_path / "relay", clock=clock, **settings) as relay,
        aiohttp.ClientSession() as http,
    ):
        yield Ctx(relay, clock, http, objects=object_backend)
