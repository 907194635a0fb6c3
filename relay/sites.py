"""Registering sending hospitals and trauma centers on a relay."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from pathlib import Path

from relay import audit, errors
from relay.config import RelayConfig
from relay.storage.models import Site
from relay.storage.permissions import OWNER_ONLY_FOLDER
from relay.storage.sqlite import SqliteMetadata
from transfer_codes.tokens import new_token, token_digest

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


@dataclass(frozen=True)
class NewSite:
    site: Site
    credential: str  # shown once; only its digest is stored


def open_data_folder(data_dir: Path, *, create: bool) -> Path:
    """The relay database in `data_dir`. Unless `create`, it must be there already (the relay
    has run there, or a site was added with `create`): a mistyped folder must not quietly start
    a second relay whose credentials the running one does not know. With `create`, the folder
    is made if missing, and may hold the relay's `relay.toml` already.

    Raises `NoRelayData` or `DataFolderUnusable`."""
    database = RelayConfig(data_dir=data_dir).database
    if data_dir.exists() and not data_dir.is_dir():
        raise errors.DataFolderUnusable(f"{data_dir} is a file, not the relay's data folder.")
    if database.is_file():
        return database
    if not create:
        where = "holds no relay database" if data_dir.is_dir() else "does not exist"
        raise errors.NoRelayData(
            f"The folder {data_dir} {where}. Give --data the folder the relay runs with "
            "(trauma-relay relay --data FOLDER); to set up a new relay in this folder, add "
            "--create."
        )
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=OWNER_ONLY_FOLDER)
    except OSError as e:
        raise errors.DataFolderUnusable(
            f"The relay's data folder {data_dir} could not be made ({e.strerror or e}). Check "
            "--data."
        ) from e
    return database


async def add_site(
    data_dir: Path,
    name: str,
    role: str,
    display_name: str | None,
    *,
    must_exist: bool = False,
) -> NewSite:
    """Register a site and make its credential. With `must_exist` (the command line's default),
    `data_dir` must already hold the relay's database (`open_data_folder`)."""
    if not NAME.match(name):
        raise errors.BadRequest(
            "Site names are 2-63 lowercase letters, digits and hyphens, e.g. 'st-mary-er'."
        )
    if role not in ("sending", "receiving"):
        raise errors.BadRequest("The role must be 'sending' or 'receiving'.")
    database = await asyncio.to_thread(open_data_folder, data_dir, create=not must_exist)
    site = Site(name=name, role=role, display_name=(display_name or name).strip()[:200])
    credential = new_token()
    now = time.time()
    store = await SqliteMetadata.open(database)
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
