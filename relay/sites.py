"""Registering sending hospitals and trauma centers on a relay."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from pathlib import Path

from relay import audit, errors
from relay.storage.models import Site
from relay.storage.sqlite import SqliteMetadata
from transfer_codes.tokens import new_token, token_digest

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


@dataclass(frozen=True)
class NewSite:
    site: Site
    credential: str  # shown once; only its digest is stored


async def add_site(data_dir: Path, name: str, role: str, display_name: str | None) -> NewSite:
    if not NAME.match(name):
        raise errors.BadRequest(
            "Site names are 2-63 lowercase letters, digits and hyphens, e.g. 'st-mary-er'."
        )
    if role not in ("sending", "receiving"):
        raise errors.BadRequest("The role must be 'sending' or 'receiving'.")
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    site = Site(name=name, role=role, display_name=(display_name or name).strip()[:200])
    credential = new_token()
    now = time.time()
    store = await SqliteMetadata.open(data_dir / "relay.sqlite3")
    try:
        async with store.transaction() as tx:
            await tx.add_site(site, token_digest(credential), now)
            await audit.record(
                tx,
                now,
                action="site-added",
                actor="operator",
                actor_role="operator",
                transfer_id=None,
                site=name,
                role=role,
            )
    finally:
        await store.close()
    return NewSite(site, credential)
