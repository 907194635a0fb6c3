"""`trauma-relay relay migrate`: move a stopped relay's embedded storage (the SQLite database
and the objects/ folder of its data folder) into the PostgreSQL database and/or the S3 bucket
that a target configuration names, without breaking the codes of its live transfers.

Everything is copied as it is, row by row and byte by byte: site credential digests and their
rotation state, transfers with their state and failure counts, key locks, cancelled locks, phone
blobs, authorization and redemption digests, break-glass, receipts, manifest records, object
statuses, transfer origins and the audit trail (same seq, same hashes: it verifies on the target
as it did on the source). The relay's decoy key goes along in the data folder.

Order, so that a failure leaves the target as empty as it was:
1. The source's database is locked exclusively for the whole run (a relay that runs on it holds
   it open: then the migration refuses; one started meanwhile cannot open it).
2. The target must be empty (no site, transfer or audit record; no object).
3. Every sealed object is copied and read back: its SHA-256 on the target must be the source's.
4. All the metadata is written in one PostgreSQL transaction, with one audit record of the move
   (`relay-migrated`, counts only) after the copied chain. If anything fails before its COMMIT,
   the objects copied in step 3 are deleted again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from relay import audit, errors
from relay.config import RelayConfig
from relay.sites import MIGRATED
from relay.storage.audit_chain import GENESIS
from relay.storage.files import FileObjectStore
from relay.storage.interface import ObjectStore
from relay.storage.models import AuditEvent
from relay.storage.opening import open_objects
from relay.storage.postgres import PostgresMetadata, PostgresTransaction, read_password
from relay.storage.rows import chained_record, schema_steps
from relay.storage.s3 import S3ObjectStore
from transfer_codes.tokens import is_transfer_id

log = logging.getLogger("relay.migrate")

# Every metadata table, parents before the tables that refer to them. A table the schema gains
# must be added here: `migrate` refuses a target whose tables are not exactly these.
TABLES = (
    "sites",
    "transfers",
    "key_locks",
    "cancelled_locks",
    "phone_blobs",
    "objects",
    "manifest_records",
    "transfer_origins",
    "audit",
)
# Tables only PostgreSQL has, which hold nothing to migrate: the failed guesses every instance
# counts (an embedded relay counts them in its process, and they matter for minutes only).
PG_ONLY_TABLES = ("guess_failures",)
DECOY_KEY = "decoy.key"
NO_LIMIT = 2**62
READ_BLOCK = 1024 * 1024


class MigrationRefused(errors.ConfigError):
    """The migration cannot be done as asked; nothing was changed."""


@dataclass
class Summary:
    rows: dict[str, int] = field(default_factory=dict)
    objects: int = 0
    object_bytes: int = 0
    left_behind: int = 0  # object files of no live transfer (purged or unknown)
    metadata_to: str = ""
    objects_to: str = ""
    decoy_key: str = ""
    damaged: list[str] = field(default_factory=list)
    objects_moved: bool = False


def _same_objects(source: RelayConfig, target: RelayConfig) -> bool:
    if source.objects_url is None and target.objects_url is None:
        return source.objects_dir.resolve() == target.objects_dir.resolve()
    return (source.objects_url, source.s3_endpoint_url) == (
        target.objects_url,
        target.s3_endpoint_url,
    )


def _lock_source(database: Path) -> sqlite3.Connection:
    """The source database, held exclusively until closed; `MigrationRefused` while a relay (or
    anything else) has it open."""
    if not database.is_file():
        raise MigrationRefused(
            f"{database.parent} holds no relay database. Give --data the folder the relay ran with."
        )
    db = sqlite3.connect(database, isolation_level=None, timeout=0)
    try:
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        db.execute("BEGIN EXCLUSIVE")
        db.execute("COMMIT")  # in EXCLUSIVE locking mode the lock stays until close
    except sqlite3.OperationalError as e:
        db.close()
        raise MigrationRefused(
            f"The relay database {database} is in use ({e}): the relay still runs on it. Stop "
            "it (e.g. systemctl stop trauma-relay), check that no `trauma-relay relay --data "
            f"{database.parent}` is left, and run the migration again."
        ) from e
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    latest = schema_steps("schema")[-1][0]
    if version != latest:
        db.close()
        raise MigrationRefused(
            f"The relay database {database} is at schema version {version}, not {latest}: "
            "start this version of the relay on it once and stop it, then migrate."
        )
    return db


def _source_rows(db: sqlite3.Connection, table: str, columns: list[str]) -> list[tuple[Any, ...]]:
    have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    missing = [c for c in columns if c not in have]
    if missing:
        raise MigrationRefused(
            f"The source's table {table} lacks {', '.join(missing)}: this relay version cannot "
            "migrate it."
        )
    order = "seq" if table == "audit" else "rowid"
    return list(db.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}"))  # noqa: S608


def _typed(value: Any, pg_type: str) -> Any:
    """A SQLite value as PostgreSQL's column takes it (SQLite may keep a whole REAL as int)."""
    if value is None:
        return None
    if pg_type == "double precision" and isinstance(value, int):
        return float(value)
    if pg_type == "bigint" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


async def _pg_columns(conn: asyncpg.Connection) -> dict[str, list[tuple[str, str]]]:
    rows = await conn.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
    )
    columns: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        columns.setdefault(row["table_name"], []).append((row["column_name"], row["data_type"]))
    columns.pop("relay_schema", None)
    for table in PG_ONLY_TABLES:
        columns.pop(table, None)
    if set(columns) != set(TABLES):
        raise MigrationRefused(
            "The target database's tables are not the ones this relay version migrates "
            f"({', '.join(sorted(columns))}): use the same relay version for both."
        )
    return columns


async def _pg_is_empty(conn: asyncpg.Connection) -> bool:
    for table in ("sites", "transfers", "audit"):
        if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})"):  # noqa: S608
            return False
    return True


async def _holds_objects(store: FileObjectStore | S3ObjectStore, config: RelayConfig) -> bool:
    if isinstance(store, S3ObjectStore):
        return await store.holds_any()
    return config.objects_dir.is_dir() and any(config.objects_dir.iterdir())


def _source_objects(objects_dir: Path, live: set[str]) -> tuple[list[tuple[str, int, Path]], int]:
    """(transfer id, index, file) of every object of a live transfer; and how many files were
    left behind (of purged or unknown transfers)."""
    found: list[tuple[str, int, Path]] = []
    left = 0
    if not objects_dir.is_dir():
        return found, left
    for folder in sorted(objects_dir.iterdir()):
        files = sorted(folder.glob("*.sealed")) if folder.is_dir() else []
        if not is_transfer_id(folder.name) or folder.name not in live:
            left += len(files) or 1
            continue
        for path in files:
            stem = path.name.removesuffix(".sealed")
            if stem.isdigit():
                found.append((folder.name, int(stem), path))
            else:
                left += 1
    return found, left


async def _file_blocks(path: Path, digest: Any) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while block := await asyncio.to_thread(f.read, READ_BLOCK):
            digest.update(block)
            yield block


async def _copy_objects(
    objects: list[tuple[str, int, Path]],
    target: ObjectStore,
    recorded: dict[tuple[str, int], str | None],
    summary: Summary,
    copied: set[str],
) -> None:
    for transfer_id, index, path in objects:
        copied.add(transfer_id)
        digest = hashlib.sha256()
        size = await target.write_at(transfer_id, index, 0, _file_blocks(path, digest), NO_LIMIT)
        source_sha = digest.hexdigest()
        if await target.sha256(transfer_id, index) != source_sha:
            raise MigrationRefused(
                f"The copy of object {index} of transfer {transfer_id} does not read back as "
                "written (its SHA-256 differs): check the object store, then migrate again."
            )
        expected = recorded.get((transfer_id, index))
        if expected is not None and expected != source_sha:
            summary.damaged.append(f"{transfer_id}/{index}")
        summary.objects += 1
        summary.object_bytes += size


def _copy_decoy_key(source: RelayConfig, target: RelayConfig, summary: Summary) -> None:
    src = source.data_dir / DECOY_KEY
    dst = target.data_dir / DECOY_KEY
    if not src.is_file() or src.resolve() == dst.resolve():
        summary.decoy_key = str(dst) if dst.is_file() else ""
        return
    if dst.exists():
        if dst.read_bytes() != src.read_bytes():
            raise MigrationRefused(
                f"{dst} is another relay's decoy key. Every instance must use the migrated "
                f"relay's: remove {dst} (it holds nothing else) and migrate again."
            )
    else:
        target.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f, src.open("rb") as g:
            shutil.copyfileobj(g, f)
            f.flush()
            os.fsync(f.fileno())
    summary.decoy_key = str(dst)


async def _write_metadata(
    store: PostgresMetadata, db: sqlite3.Connection, summary: Summary
) -> None:
    async with store.connection() as conn, conn.transaction():
        columns = await _pg_columns(conn)
        # No relay on the target may write while the copy is made (and none has meanwhile).
        await conn.execute(f"LOCK TABLE {', '.join(TABLES)} IN EXCLUSIVE MODE")
        if not await _pg_is_empty(conn):
            raise MigrationRefused(
                "The target database already holds a relay's data: migrate into an empty one."
            )
        for table in TABLES:
            names = [name for name, _ in columns[table]]
            types = [kind for _, kind in columns[table]]
            rows = [
                tuple(_typed(v, t) for v, t in zip(row, types, strict=True))
                for row in _source_rows(db, table, names)
            ]
            if rows:
                try:
                    await conn.copy_records_to_table(table, records=rows, columns=names)
                except asyncpg.PostgresError as e:
                    raise MigrationRefused(
                        f"PostgreSQL refused the source's rows of {table} ({e}), so nothing was "
                        "migrated: the target is as empty as before. Check the source with "
                        "`sqlite3 relay.sqlite3 'PRAGMA foreign_key_check'`, then migrate again."
                    ) from e
            summary.rows[table] = len(rows)
        # The move itself, at the end of the copied chain (as the store appends any record).
        tx = PostgresTransaction(conn)
        await tx.audit(_migration_event(summary, "postgresql"), time.time())
        await tx.append_audit()


def _migration_event(summary: Summary, metadata: str) -> AuditEvent:
    """The audit record of the move itself (no PHI: counts and where things went)."""
    return AuditEvent(
        event_id=audit.EVENT_IDS["relay-migrated"],
        action="relay-migrated",
        actor="operator",
        actor_role="operator",
        transfer_id=None,
        outcome="success",
        detail={
            "metadata": metadata,
            "objects": "moved" if summary.objects_moved else "unchanged",
            "counts": {**summary.rows, "objects": summary.objects},
        },
        remote="local",
    )


def _record_in_sqlite(db: sqlite3.Connection, summary: Summary) -> None:
    """The audit record of the move, appended to the embedded database's chain (which stays)."""
    last = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (int(last[0]), bytes(last[1])) if last else (0, GENESIS)
    _digest, values = chained_record(_migration_event(summary, "embedded"), time.time(), prev)
    db.execute("BEGIN IMMEDIATE")
    db.execute(
        "INSERT INTO audit (seq, at, event_id, action, actor, actor_role, transfer_id, outcome, "
        "detail, remote, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (seq + 1, *values),
    )
    db.execute("COMMIT")


async def migrate(source: RelayConfig, target: RelayConfig) -> Summary:
    """Copy `source` (embedded storage, relay stopped) into `target`; `MigrationRefused` with
    nothing changed, or the summary of what was copied."""
    if source.metadata_url is not None:
        raise MigrationRefused(
            f"The relay in {source.data_dir} keeps its metadata in PostgreSQL already: there is "
            "nothing to migrate from its data folder."
        )
    moves_metadata = target.metadata_url is not None
    if not moves_metadata and target.database.resolve() != source.database.resolve():
        raise MigrationRefused(
            "The target keeps its metadata in the embedded database, in another data folder: "
            "to move a relay to another folder, stop it and move the folder. To migrate, name "
            "a PostgreSQL database (metadata_url) or an S3 bucket (objects_url) in the target."
        )
    moves_objects = not _same_objects(source, target)
    if moves_objects and source.objects_url is not None:
        raise MigrationRefused(
            "The source keeps its objects in S3 and the target names another place: moving "
            "objects between buckets is not done by this command (use the store's own tools)."
        )
    if not moves_metadata and not moves_objects:
        raise MigrationRefused("The target is the source: there is nothing to migrate.")

    summary = Summary(
        objects_moved=moves_objects,
        metadata_to="PostgreSQL" if moves_metadata else f"{source.database} (unchanged)",
        objects_to=(target.objects_url or str(target.objects_dir))
        if moves_objects
        else f"{source.objects_url or source.objects_dir} (unchanged)",
    )
    db = _lock_source(source.database)
    try:
        store = None
        if moves_metadata:
            assert target.metadata_url is not None
            store = await PostgresMetadata.open(
                target.metadata_url, read_password(target.metadata_password_file), max_size=2
            )
        try:
            if store is not None:
                async with store.connection() as conn:
                    await _pg_columns(conn)
                    if not await _pg_is_empty(conn):
                        raise MigrationRefused(
                            "The target database already holds a relay's data: migrate into "
                            "an empty one."
                        )
            await _move(db, source, target, store, moves_objects, summary)
            if store is not None:
                _mark_migrated(source, summary)
        finally:
            if store is not None:
                await store.close()
    finally:
        db.close()
    return summary


def _mark_migrated(source: RelayConfig, summary: Summary) -> None:
    """Leave `MIGRATED` in the source's data folder, so its relay refuses to start there."""
    text = json.dumps({"at": time.time(), "metadata": summary.metadata_to}) + "\n"
    fd = os.open(source.data_dir / MIGRATED, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


async def _move(
    db: sqlite3.Connection,
    source: RelayConfig,
    target: RelayConfig,
    store: PostgresMetadata | None,
    moves_objects: bool,
    summary: Summary,
) -> None:
    objects_store = await open_objects(target) if moves_objects else None
    copied: set[str] = set()
    try:
        if objects_store is not None and await _holds_objects(objects_store, target):
            raise MigrationRefused(
                f"The target object store {summary.objects_to} already holds objects: migrate "
                "into an empty one."
            )
        _copy_decoy_key(source, target, summary)
        if objects_store is not None:
            live = {r[0] for r in db.execute("SELECT id FROM transfers WHERE purged = 0")}
            found, summary.left_behind = _source_objects(source.objects_dir, live)
            recorded = {
                (r[0], int(r[1])): r[2]
                for r in db.execute("SELECT transfer_id, idx, sha256 FROM objects WHERE complete")
            }
            await _copy_objects(found, objects_store, recorded, summary, copied)
        if store is not None:
            await _write_metadata(store, db, summary)
        else:
            for table in TABLES:
                summary.rows[table] = int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608
            _record_in_sqlite(db, summary)
    except BaseException:
        if objects_store is not None:
            for transfer_id in copied:
                with contextlib.suppress(Exception):
                    await objects_store.delete_transfer(transfer_id)
        raise
    finally:
        if isinstance(objects_store, S3ObjectStore):
            await objects_store.close()
