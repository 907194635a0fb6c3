"""Registering sending hospitals and trauma centers on a relay, and their life after: listing
them, rotating a credential (the old one stops at once or after a stated grace), disabling a
site (refused at once; its open transfers kept, or revoked) and enabling it again. Every change
is audited, as the operator at this machine."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
import unicodedata
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from relay import audit, errors
from relay import config as relay_config
from relay.config import RelayConfig
from relay.lifecycle import TAKEN
from relay.storage.interface import MetadataTransaction
from relay.storage.models import Site, SiteRecord
from relay.storage.opening import MetadataBackend, open_metadata
from relay.storage.permissions import OWNER_ONLY_FOLDER
from transfer_codes.tokens import new_token, token_digest

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
Clock = Callable[[], float]
MAX_GRACE = 7 * 24 * 3600  # seconds a rotated-out credential may keep working


@dataclass(frozen=True)
class NewSite:
    site: Site
    credential: str  # shown once; only its digest is stored


def open_data_folder(data_dir: Path, *, create: bool, shared: bool = False) -> Path:
    """The relay database in `data_dir`. Unless `create`, it must be there already (the relay
    has run there, or a site was added with `create`): a mistyped folder must not quietly start
    a second relay whose credentials the running one does not know. With `create`, the folder
    is made if missing, and may hold the relay's `relay.toml` already. When the metadata is
    `shared` (in PostgreSQL), the folder itself must be there unless `create`.

    Raises `NoRelayData` or `DataFolderUnusable`."""
    database = RelayConfig(data_dir=data_dir).database
    if data_dir.exists() and not data_dir.is_dir():
        raise errors.DataFolderUnusable(f"{data_dir} is a file, not the relay's data folder.")
    if database.is_file() or (shared and data_dir.is_dir()):
        return database
    if not create:
        where = "holds no relay database" if data_dir.is_dir() else "does not exist"
        raise errors.NoRelayData(
            f"The folder {data_dir} {where}. Give --data the folder the relay runs with "
            "(trauma-relay relay --data FOLDER), and --config the file it runs with if that "
            "names its database; to set up a new relay in this folder, add --create."
        )
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=OWNER_ONLY_FOLDER)
    except OSError as e:
        raise errors.DataFolderUnusable(
            f"The relay's data folder {data_dir} could not be made ({e.strerror or e}). Check "
            "--data."
        ) from e
    return database


# Left in an embedded relay's data folder by `relay migrate` once its metadata went to
# PostgreSQL: that relay must not run there again (its codes live, and are spent, elsewhere).
MIGRATED = "migrated.json"


def refuse_if_migrated(data_dir: Path) -> None:
    """Raise `DataFolderUnusable` when the embedded relay in `data_dir` was migrated."""
    marker = data_dir / MIGRATED
    if not marker.is_file():
        return
    raise errors.DataFolderUnusable(
        f"The relay in {data_dir} was moved to PostgreSQL ({marker}): its transfers and codes "
        "live there now, and this folder's copy is out of date. Start the relay with the new "
        "configuration (storage.metadata_url), as the runbook's 'Move to PostgreSQL and S3' "
        "says."
    )


async def add_site(
    data_dir: Path,
    name: str,
    role: str,
    display_name: str | None,
    *,
    must_exist: bool = False,
    config_file: Path | None = None,
) -> NewSite:
    """Register a site and make its credential. With `must_exist` (the command line's default),
    `data_dir` must already hold the relay's database (`open_data_folder`)."""
    if not NAME.match(name):
        raise errors.BadRequest(
            "Site names are 2-63 lowercase letters, digits and hyphens, e.g. 'st-mary-er'."
        )
    if role not in ("sending", "receiving"):
        raise errors.BadRequest("The role must be 'sending' or 'receiving'.")
    if display_name is not None and any(unicodedata.category(c) == "Cc" for c in display_name):
        # Shown on the sites' terminals and the phones: a line break or an escape would forge
        # lines there.
        raise errors.BadRequest(
            "A display name is one line of text, without control characters, e.g. "
            '"County Trauma Center".'
        )
    store = await open_store(data_dir, create=not must_exist, config_file=config_file)
    site = Site(name=name, role=role, display_name=(display_name or name).strip()[:200])
    credential = new_token()
    now = time.time()
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
    if not must_exist:
        await asyncio.to_thread(_owned_like_folder, data_dir)
    return NewSite(site, credential)


def _owned_like_folder(data_dir: Path) -> None:
    """Root setting up a relay in a folder that belongs to the relay's user (the runbook's
    `install -d -o trauma-relay`, then `site add --create` as root): give it the database it
    made, which only root could otherwise open, and the relay could not."""
    database = RelayConfig(data_dir=data_dir).database
    if os.geteuid() != 0 or not database.is_file():
        return
    folder = data_dir.stat()
    if database.stat().st_uid != folder.st_uid:
        os.chown(database, folder.st_uid, folder.st_gid)


async def open_store(
    data_dir: Path, *, create: bool, upgrade: bool = True, config_file: Path | None = None
) -> MetadataBackend:
    """The metadata store of the relay that runs with `data_dir`: its embedded database, or the
    PostgreSQL database its `relay.toml`, the relay's `config_file` (`--config`) or
    TRAUMA_RELAY_METADATA_URL names."""
    config = await asyncio.to_thread(relay_config.load, data_dir, config_file=config_file)
    shared = config.metadata_url is not None
    await asyncio.to_thread(open_data_folder, data_dir, create=create, shared=shared)
    return await open_metadata(config, upgrade=upgrade)


@contextlib.asynccontextmanager
async def _operator(
    data_dir: Path, clock: Clock, config_file: Path | None
) -> AsyncIterator[tuple[MetadataBackend, float]]:
    """The relay's database (it must exist) and the time now, for one operator command."""
    store = await open_store(data_dir, create=False, config_file=config_file)
    try:
        yield store, clock()
    finally:
        await store.close()


async def _existing(tx: MetadataTransaction, name: str) -> Site:
    site = await tx.site(name)
    if site is None:
        raise errors.UnknownSiteName(
            f"There is no site named {name!r} on this relay; `trauma-relay site list` shows them."
        )
    return site


async def _record(
    tx: MetadataTransaction, now: float, action: str, site: str, **counts: int
) -> None:
    """An operator's change to `site`, with `counts` (how many revoked, grace seconds)."""
    await audit.record(
        tx,
        now,
        action=action,
        actor="operator",
        actor_role="operator",
        transfer_id=None,
        site=site,
        counts=counts,
    )


async def list_sites(data_dir: Path, *, config_file: Path | None = None) -> list[SiteRecord]:
    async with _operator(data_dir, time.time, config_file) as (store, _), store.transaction() as tx:
        return await tx.site_records()


async def rotate_site(
    data_dir: Path,
    name: str,
    grace: float = 0,
    *,
    clock: Clock = time.time,
    config_file: Path | None = None,
) -> NewSite:
    """A new credential for `name`, shown once; the old one is refused at once, or from
    `grace` seconds from now."""
    if not 0 <= grace <= MAX_GRACE:
        raise errors.BadRequest(f"The grace must be 0 to {MAX_GRACE // 3600} hours.")
    credential = new_token()
    async with _operator(data_dir, clock, config_file) as (store, now), store.transaction() as tx:
        site = await _existing(tx, name)
        until = now + grace if grace else None
        await tx.rotate_credential(name, token_digest(credential), until)
        await _record(tx, now, "site-credential-rotated", name, grace_seconds=int(grace))
    return NewSite(site, credential)


@dataclass(frozen=True)
class Disabled:
    site: Site
    revoked: list[str]  # transfer ids revoked with it
    kept: int  # open transfers left as they were (redeemed ones always are)


async def disable_site(
    data_dir: Path,
    name: str,
    *,
    revoke_open: bool,
    clock: Clock = time.time,
    config_file: Path | None = None,
) -> Disabled:
    """Refuse `name`'s credential from now on (and stop offering it as a destination). Its open
    transfers are kept, so a study already on its way can still be redeemed (a trauma center's
    once it is enabled again), unless `revoke_open`: then every one not yet redeemed is revoked
    and its keys deleted."""
    revoked: list[str] = []
    async with _operator(data_dir, clock, config_file) as (store, now), store.transaction() as tx:
        site = await _existing(tx, name)
        if site.disabled_at is None:
            await tx.set_site_disabled(name, now)
        still_open = await tx.open_transfers_of(name)
        for t in still_open:
            if not revoke_open or t.state in TAKEN or t.is_due(now):
                continue
            await tx.save_transfer(t.withdrawn_by_operator(now))
            await tx.delete_locks(t.id)
            await audit.record(
                tx,
                now,
                action="transfer-revoked",
                actor="operator",
                actor_role="operator",
                transfer_id=t.id,
                reason="site disabled",
                site=name,
            )
            revoked.append(t.id)
        await _record(tx, now, "site-disabled", name, revoked=len(revoked))
    return Disabled(site, revoked, len(still_open) - len(revoked))


async def enable_site(
    data_dir: Path, name: str, *, clock: Clock = time.time, config_file: Path | None = None
) -> Site:
    async with _operator(data_dir, clock, config_file) as (store, now), store.transaction() as tx:
        site = await _existing(tx, name)
        await tx.set_site_disabled(name, None)
        await _record(tx, now, "site-enabled", name)
    return site
