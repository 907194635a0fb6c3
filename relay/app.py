"""Assemble the relay's aiohttp application; lifetimes live in `cleanup_ctx`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

from aiohttp import web

from relay import disk, metrics, serving, sweeper
from relay.api import batches, openapi, phone, problems, redemption, transfers, uploads
from relay.appkeys import (
    CONFIG,
    DECOY_KEY,
    GUESSES,
    MANIFEST_EVENTS,
    METADATA,
    OBJECTS,
    REFUSALS,
    SIGN_INS,
    SUPPRESSED,
    UPLOAD_LOCKS,
)
from relay.config import RelayConfig
from relay.metrics import METRICS, Metrics
from relay.storage.opening import open_metadata, open_objects
from relay.storage.permissions import OWNER_ONLY_FOLDER
from relay.storage.s3 import S3ObjectStore
from relay.throttle import GLOBAL, Limit, Throttle
from transfer_codes import wire


def _decoy_key(data_dir: Path) -> bytes:
    """A relay-local random key that makes decoy salts for unknown codes. Not a data key."""
    path = data_dir / "decoy.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
            f.flush()
            os.fsync(f.fileno())
    return path.read_bytes()


async def _storage(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=OWNER_ONLY_FOLDER)
    app[DECOY_KEY] = _decoy_key(config.data_dir)
    metadata = await open_metadata(config)
    app[METADATA] = metadata
    try:
        await metadata.listen(partial(uploads.wake, app))
        objects = await open_objects(config)
    except BaseException:
        await metadata.close()
        raise
    app[OBJECTS] = objects
    yield
    if isinstance(objects, S3ObjectStore):
        await objects.close()
    await metadata.close()


async def _sweeper(app: web.Application) -> AsyncIterator[None]:
    counted = app[METRICS]

    def swept(purged: int) -> None:
        counted.sweeps.inc()
        counted.purged.inc(purged)

    task = asyncio.create_task(sweeper.run(app[CONFIG], app[METADATA], app[OBJECTS], swept))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def healthz(request: web.Request) -> web.Response:
    """Answers "ok" when the database answers and the disk has more than its reserve free; otherwise
    503 saying which ("disk-full": no new uploads are taken; what is held is safe)."""
    async with request.app[METADATA].transaction() as tx:
        await tx.sites()
    config = request.app[CONFIG]
    free = await disk.free_bytes(config.data_dir)
    if free <= config.disk_reserve_bytes:
        return web.json_response({"status": "disk-full"}, status=503)
    return web.json_response({"status": "ok"})


def make_app(config: RelayConfig, *, sweep: bool = True) -> web.Application:
    app = web.Application(
        middlewares=[serving.in_flight_middleware, problems.problems_middleware],
        client_max_size=1024**2,
    )
    app[CONFIG] = config
    app[serving.IN_FLIGHT] = serving.InFlight()
    app.on_response_prepare.append(problems.no_store)
    app.on_response_prepare.append(serving.close_while_draining)
    if config.base_url.startswith("https://"):
        app.on_response_prepare.append(serving.strict_transport)
    app[UPLOAD_LOCKS] = {}
    app[MANIFEST_EVENTS] = {}
    app[GUESSES] = Throttle(
        {
            "site": Limit(config.guess_limit_site, config.guess_window),
            "address": Limit(config.guess_limit_address, config.guess_window),
            "link": Limit(config.guess_limit_address, config.guess_window),
            GLOBAL: Limit(config.guess_limit_global, config.guess_window),
        }
    )
    app[REFUSALS] = Throttle({"address": Limit(config.refusals_audited_per_minute, 60)})
    app[SUPPRESSED] = {}
    app[SIGN_INS] = {}
    app[METRICS] = Metrics.new()
    app.cleanup_ctx.append(_storage)
    if sweep:
        app.cleanup_ctx.append(_sweeper)
    app.router.add_get(wire.HEALTH, healthz)
    app.router.add_get(metrics.PATH, metrics.serve)
    app.router.add_routes(openapi.routes)
    app.router.add_routes(transfers.routes)
    app.router.add_routes(uploads.routes)
    app.router.add_routes(batches.routes)
    app.router.add_routes(redemption.routes)
    app.router.add_routes(phone.routes)
    return app
