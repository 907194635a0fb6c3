"""Which metadata store the relay's configuration names: the embedded SQLite file in the data
directory (the default), or a PostgreSQL database shared by several relay instances."""

from __future__ import annotations

from relay.config import RelayConfig
from relay.storage.postgres import PostgresMetadata, read_password
from relay.storage.sqlite import SqliteMetadata

MetadataBackend = SqliteMetadata | PostgresMetadata


async def open_metadata(config: RelayConfig, *, upgrade: bool = True) -> MetadataBackend:
    """The store, its schema brought up to date (unless not `upgrade`: PostgreSQL only, for a
    reader such as the audit commands)."""
    if config.metadata_url is None:
        return await SqliteMetadata.open(config.database)
    return await PostgresMetadata.open(
        config.metadata_url, read_password(config.metadata_password_file), upgrade=upgrade
    )
