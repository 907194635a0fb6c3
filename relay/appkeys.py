"""Typed aiohttp application keys: the only way handlers reach shared state."""

from __future__ import annotations

import asyncio

from aiohttp import web

from relay.config import RelayConfig
from relay.storage.interface import MetadataStore, ObjectStore
from relay.storage.models import Site
from relay.throttle import Throttle

CONFIG = web.AppKey("config", RelayConfig)
METADATA = web.AppKey("metadata", MetadataStore)
OBJECTS = web.AppKey("objects", ObjectStore)
DECOY_KEY = web.AppKey("decoy_key", bytes)
UPLOAD_LOCKS = web.AppKey("upload_locks", dict[tuple[str, int], asyncio.Lock])
MANIFEST_EVENTS = web.AppKey("manifest_events", dict[str, asyncio.Event])
GUESSES = web.AppKey("guesses", Throttle)  # failed redemptions and phone links
REFUSALS = web.AppKey("refusals", Throttle)  # refused site credentials, for the audit trail
SUPPRESSED = web.AppKey("suppressed", dict[str, int])  # refusals not audited yet, by address
# When each site's credential was last audited as accepted, by (site, client address).
SIGN_INS = web.AppKey("sign_ins", dict[tuple[str, str], float])


__all__ = [
    "CONFIG",
    "DECOY_KEY",
    "GUESSES",
    "MANIFEST_EVENTS",
    "METADATA",
    "OBJECTS",
    "REFUSALS",
    "SIGN_INS",
    "SUPPRESSED",
    "UPLOAD_LOCKS",
    "Site",
]
