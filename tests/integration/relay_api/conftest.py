"""The `ctx` fixture: a relay on port 0 with a fake clock, and an HTTP session to it, once on
each storage the relay offers: the embedded default (`sqlite`: the SQLite file and the objects
folder in the data directory) and the shared one several instances use (`postgres`: a fresh
PostgreSQL database per test on the session's server, and a prefix of its own in a bucket of
the session's local S3 server). A test about the SQLite file itself is marked `sqlite_only`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from peers.postgres import PostgresServer, postgres_server  # noqa: F401 - a fixture
from relay_harness import FakeClock, running_relay

from relay.storage.permissions import OWNER_ONLY_FOLDER
from relay_api.plumbing import Ctx, PgDatabase, StoredObjects

BACKENDS = ("sqlite", "postgres")


def use_postgres(data_dir: Path, server: PostgresServer) -> PgDatabase:
    """Point the relay that runs with `data_dir` at a fresh PostgreSQL database, as an operator
    does: `metadata_url` and `metadata_password_file` in its relay.toml."""
    database = server.new_database()
    data_dir.mkdir(parents=True, mode=OWNER_ONLY_FOLDER)
    (data_dir / "relay.toml").write_text(
        f'metadata_url = "{server.url(database)}"\n'
        f'metadata_password_file = "{server.password_file}"\n',
        encoding="utf-8",
    )
    return PgDatabase(server, database)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param != "sqlite" and request.node.get_closest_marker("sqlite_only"):
        pytest.skip("about the embedded SQLite file only")
    return str(request.param)


@pytest_asyncio.fixture
async def ctx(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> AsyncIterator[Ctx]:
    clock = FakeClock()
    data_dir = tmp_path / "relay"
    pg = None
    objects = StoredObjects(data_dir / "objects")
    settings: dict[str, object] = {}
    if backend == "postgres":
        pg = use_postgres(data_dir, request.getfixturevalue("postgres_server"))
        bucket = request.getfixturevalue("s3_bucket")
        objects = StoredObjects(objects.folder, bucket, bucket.new_prefix())
        settings = bucket.settings(objects.prefix)
    async with (
        running_relay(data_dir, clock=clock, **settings) as relay,
        aiohttp.ClientSession() as http,
    ):
        yield Ctx(relay, clock, http, pg=pg, objects=objects)
