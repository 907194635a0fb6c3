"""Which stores the relay's configuration names: for metadata, the embedded SQLite file in the
data directory (the default) or a PostgreSQL database shared by several relay instances; for
sealed objects, the data directory's objects/ folder (the default) or an S3 bucket."""

from __future__ import annotations

from relay.config import RelayConfig
from relay.storage.files import FileObjectStore
from relay.storage.postgres import PostgresMetadata, read_password
from relay.storage.s3 import S3Location, S3ObjectStore
from relay.storage.sqlite import SqliteMetadata

MetadataBackend = SqliteMetadata | PostgresMetadata
ObjectBackend = FileObjectStore | S3ObjectStore


async def open_metadata(config: RelayConfig, *, upgrade: bool = True) -> MetadataBackend:
    """The store, its schema brought up to date (unless not `upgrade`: PostgreSQL only, for a
    reader such as the audit commands)."""
    if config.metadata_url is None:
        return await SqliteMetadata.open(config.database)
    return await PostgresMetadata.open(
        config.metadata_url, read_password(config.metadata_password_file), upgrade=upgrade
    )


async def open_objects(config: RelayConfig) -> ObjectBackend:
    """The folder in the data directory, unless `objects_url` names an S3 bucket (then close
    the store with its `close`)."""
    if config.objects_url is None:
        return FileObjectStore(config.objects_dir)
    return await S3ObjectStore.open(
        S3Location.parse(config.objects_url),
        endpoint_url=config.s3_endpoint_url,
        region=config.s3_region,
        credentials_file=config.s3_credentials_file,
    )
