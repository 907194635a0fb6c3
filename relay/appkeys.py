"""Typed aiohttp application keys: the only way handlers reach shared state."""

from __future__ import annotations

import asyncio

from aiohttp import web

from relay.config import RelayConfig
from relay.storage.interface import MetadataStore, ObjectStore
from relay.storage.models import Site

CONFIG = web.AppKey("config", RelayConfig)
METADATA = web.AppKey("metadata", MetadataStore)
OBJECTS = web.AppKey("objects", ObjectStore)
DECOY_KEY = web.AppKey("decoy_key", bytes)
UPLOAD_LOCKS = web.AppKey("upload_locks", dict[tuple[str, int], asyncio.Lock])
MANIFEST_EVENTS = web.AppKey("manifest_events", dict[str, asyncio.Event])


__all__ = [
    "CONFIG",
    "DECOY_KEY",
    "MANIFEST_EVENTS",
    "METADATA",
    "OBJECTS",
    "UPLOAD_LOCKS",
    "Site",
]
