"""The metadata store for several relay instances: one PostgreSQL database, over asyncpg.

It behaves as the embedded SQLite store (`relay.storage.sqlite`) does, across processes:

- A transaction is one PostgreSQL transaction on a connection of the pool; its COMMIT (with
  PostgreSQL's default `synchronous_commit = on`) is what makes a change acknowledged.
- Transactions do not interleave on the rows they touch: reading a transfer takes its row lock
  (`SELECT ... FOR UPDATE`), so a redemption, a failed guess or a revocation on one instance waits
  for one in flight on another and then reads what it left. One-time redemption and the failure
  count stay atomic however many instances answer. Choosing a free locator for a trauma center
  and counting a sender's open transfers take an advisory lock per site, so two instances cannot
  hand out one locator or both slip past a quota.
- The audit trail stays one hash chain: the records a transaction writes are appended just before
  its COMMIT under a transaction-scoped advisory lock, numbered after the last one (no gaps). The
  lock is the last one a transaction takes, so it cannot be part of a deadlock.
- Schema migrations (`schema_pg/NNN_*.sql`) run at start under a session advisory lock: several
  instances starting at once upgrade the database once, the others wait and find it done.
- `exclusive()` takes a try-advisory lock for a task that one instance at a time should do (the
  expiry sweep); the others skip it that round.
- `object_write_lock()` makes the write of one sealed object exclusive across instances: a
  session advisory lock, held on a connection of a pool of its own for the whole write (so
  writers waiting for it never starve the transactions of the writer holding it). PostgreSQL
  drops it with the session if the instance holding it dies.
- A long poll on a transfer's manifest waits on the instance it reached, for records and
  objects that may arrive through another: `announce` sends a `NOTIFY` on `MANIFEST_CHANNEL`
  after each commit that adds some, and every instance `listen`s on its own connection and wakes
  its waiters. A notification carries the relay's own transfer id only; one that is lost (the
  listening connection dropped; it is opened again) costs a waiter its full wait, no data.
- Round trips are what a request pays for here, so a connection goes back to its pool without
  asyncpg's reset query: the store leaves no session state on it (see `_given_back`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import stat
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg

from relay import errors
from relay.lifecycle import Transfer
from relay.storage.audit_chain import GENESIS, RECORD_COLUMNS, SELECT_RECORDS_AFTER_PG
from relay.storage.models import (
    AuditEvent,
    CancelledLock,
    ManifestRecord,
    ObjectStatus,
    Site,
    SiteRecord,
    StoredLock,
)
from relay.storage.rows import (
    MAX_SENDER_ADDRESSES,
    SITE_COLUMNS,
    TRANSFER_COLUMNS,
    chained_record,
    saved_transfer_values,
    schema_steps,
    transfer_from_row,
    transfer_values,
)

# Advisory lock keys (one 64-bit space per database): fixed numbers, spelled "trauma-relay".
MIGRATION_LOCK = 0x7472_6175_6D61_0001
AUDIT_CHAIN_LOCK = 0x7472_6175_6D61_0002
SWEEP_LOCK = 0x7472_6175_6D61_0003
# Per-site locks: the two-key form, namespaced by these, with hashtext(site name).
_LOCATOR_SPACE = 0x7472_0001
_QUOTA_SPACE = 0x7472_0002
OBJECT_WRITE_SPACE = 0x7472_0003  # with hashtext("transfer_id/index"): one object's writer

WRITE_LOCK_WAIT_SECONDS = 10.0
MANIFEST_CHANNEL = "trauma_relay_manifest"  # NOTIFY payload: "<instance> <transfer id>"
RELISTEN_SECONDS = 5.0  # between attempts to listen again after the connection dropped

log = logging.getLogger("relay")
# Connections for object write locks: one per object being written at once, beyond which
# writes queue for a free one.
WRITE_LOCK_CONNECTIONS = 32


def read_password(path: Path | None) -> str | None:
    """The database password kept in `path` (its first line), or None to leave it to libpq's
    ways (PGPASSFILE, ~/.pgpass, PGPASSWORD)."""
    if path is None:
        return None
    try:
        password = path.read_text(encoding="utf-8").splitlines()[0].strip()
        mode = path.stat().st_mode
    except (OSError, IndexError, UnicodeDecodeError) as e:
        raise errors.ConfigError(f"The metadata password file {path} could not be read.") from e
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning(
            "The metadata password file %s can be read by other users of this machine: make it "
            "readable by the relay's user only (chmod 600 %s).",
            path,
            path,
        )
    return password


async def _given_back(conn: asyncpg.Connection) -> None:
    """What the pool does to a connection given back, after asyncpg has rolled back any
    transaction left open: nothing more. asyncpg's default also sends `RESET ALL`, `CLOSE ALL`,
    `UNLISTEN *` and `pg_advisory_unlock_all()`, a round trip for every transaction. Nothing
    here leaves such state behind: a transaction's locks and settings end with it; a session
    lock (`exclusive`, `object_write_lock`) is released by `_unlock`, or its connection closed;
    the rare work given a bare connection (`_upgrade`, `connection`) runs in `_reset_after`."""


@asynccontextmanager
async def _reset_after(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection reset in full (asyncpg's reset query) before it goes back to `pool`, for
    work that may leave session state on it; closed instead if the reset fails."""
    async with pool.acquire() as conn:
        try:
            yield conn
        finally:
            try:
                await conn.reset()
            except BaseException:
                conn.terminate()
                raise


async def _lock(conn: asyncpg.Connection, sql: str, *args: object) -> Any:
    """Run `sql`, which takes a session lock, and return its value. If it fails otherwise than
    by PostgreSQL's answer (a lock not available), or is cancelled (the lock may have been
    granted just then), the connection is closed: the lock ends with the session."""
    try:
        return await conn.fetchval(sql, *args)
    except asyncpg.LockNotAvailableError:
        raise
    except BaseException:
        conn.terminate()
        raise


async def _unlock(conn: asyncpg.Connection, sql: str, *args: object) -> None:
    """Run `sql`, which releases a session lock. If that fails, the connection is closed instead
    (the lock ends with the session), so it never goes back to the pool holding the lock; the
    failure is not raised, as the work done under the lock stands (a cancellation is)."""
    try:
        await conn.execute(sql, *args)
    except (asyncpg.InterfaceError, asyncpg.PostgresError, OSError):
        conn.terminate()
    except BaseException:
        conn.terminate()
        raise


def _set_when_called(event: asyncio.Event, *_args: object) -> None:
    event.set()


async def _connect_pool(
    url: str, password: str | None, max_size: int, min_size: int = 1
) -> asyncpg.Pool:
    try:
        pool = await asyncpg.create_pool(
            url,
            password=password,
            min_size=min_size,
            max_size=max_size,
            command_timeout=300,
            reset=_given_back,
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        # The error names the host and user, never the password (it was not in the URL).
        raise errors.ConfigError(
            f"The metadata database could not be reached ({type(e).__name__}: {e}). Check "
            "metadata_url and the password (metadata_password_file or PGPASSFILE)."
        ) from e
    assert pool is not None
    return pool


class PostgresMetadata:
    """`MetadataStore` over a pool of PostgreSQL connections."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        write_locks: asyncpg.Pool | None = None,
        connect: Callable[[], Any] | None = None,
    ) -> None:
        self._pool = pool
        self._write_locks = write_locks or pool
        self._connect = connect  # a new connection of its own (for `listen`)
        self._instance = secrets.token_hex(8)  # tells this instance's notifications apart
        self._listening: asyncio.Task[None] | None = None
        self._closed = False
        # How long a write waits for another instance's write of the same object to end.
        self.write_lock_wait = WRITE_LOCK_WAIT_SECONDS

    @classmethod
    async def open(
        cls, url: str, password: str | None = None, *, max_size: int = 10, upgrade: bool = True
    ) -> PostgresMetadata:
        """The store at `url` (postgresql://user@host:port/db), its schema brought up to date
        unless not `upgrade` (for a reader)."""
        pool = await _connect_pool(url, password, max_size)
        try:
            write_locks = await _connect_pool(url, password, WRITE_LOCK_CONNECTIONS, min_size=0)
        except BaseException:
            await pool.close()
            raise
        store = cls(pool, write_locks, lambda: asyncpg.connect(url, password=password))
        try:
            if upgrade:
                await store._upgrade()
        except BaseException:
            await store.close()
            raise
        return store

    async def _upgrade(self) -> None:
        async with _reset_after(self._pool) as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS relay_schema (version BIGINT NOT NULL)"
                )
                version = await conn.fetchval("SELECT max(version) FROM relay_schema") or 0
                for number, sql in schema_steps("schema_pg"):
                    if number <= version:
                        continue
                    async with conn.transaction():
                        await conn.execute(sql)
                        await conn.execute("DELETE FROM relay_schema")
                        await conn.execute("INSERT INTO relay_schema VALUES ($1)", number)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)

    async def schema_version(self) -> int:
        async with self._pool.acquire() as conn:
            return int(await conn.fetchval("SELECT max(version) FROM relay_schema") or 0)

    async def announce(self, transfer_id: str) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                "SELECT pg_notify($1, $2)", MANIFEST_CHANNEL, f"{self._instance} {transfer_id}"
            )

    async def recent_guess_failures(
        self, keys: Sequence[str], since: float, most: int
    ) -> dict[str, list[float]] | None:
        """`MetadataStore.recent_guess_failures`, as every instance counted them."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT key, at FROM (SELECT key, at, row_number() OVER "
                "(PARTITION BY key ORDER BY at DESC) AS latest FROM guess_failures "
                "WHERE key = ANY($1::text[]) AND at > $2) recent WHERE latest <= $3 ORDER BY at",
                list(keys),
                since,
                most,
            )
        found: dict[str, list[float]] = {key: [] for key in keys}
        for key, at in rows:
            found[key].append(float(at))
        return found

    async def count_guess_failure(self, keys: Sequence[str], at: float, since: float) -> None:
        """`MetadataStore.count_guess_failure`: one row per key, and the rows of every key
        from before `since` deleted (failures are rare, and the window bounds the rest)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM guess_failures WHERE at <= $1", since)
            await conn.executemany(
                "INSERT INTO guess_failures (key, at) VALUES ($1, $2)", [(k, at) for k in keys]
            )

    async def listen(self, wake: Callable[[str], None]) -> None:
        """`MetadataStore.listen`: LISTEN on a connection of its own, opened again (every
        `RELISTEN_SECONDS`) if it drops. Returns once the first LISTEN is in place; raises
        `ConfigError` if it cannot be."""
        assert self._connect is not None
        assert self._listening is None
        connected = asyncio.get_running_loop().create_future()
        self._listening = asyncio.create_task(self._listen(wake, connected))
        await connected

    async def _listen(self, wake: Callable[[str], None], connected: asyncio.Future[None]) -> None:
        def notified(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            instance, _, transfer_id = payload.partition(" ")
            if instance != self._instance:
                wake(transfer_id)

        while not self._closed:
            dropped = asyncio.Event()
            conn: asyncpg.Connection | None = None
            try:
                assert self._connect is not None
                conn = await self._connect()
                conn.add_termination_listener(partial(_set_when_called, dropped))
                await conn.add_listener(MANIFEST_CHANNEL, notified)
                if not connected.done():
                    connected.set_result(None)
                await dropped.wait()
                log.warning("The metadata database's notification connection dropped.")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                if not connected.done():
                    connected.set_exception(
                        errors.ConfigError(
                            f"The metadata database could not be reached ({type(e).__name__})."
                        )
                    )
                    return
                log.warning("Listening to the metadata database failed (%s).", type(e).__name__)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=5)
            await asyncio.sleep(RELISTEN_SECONDS)

    async def close(self) -> None:
        self._closed = True
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
        await self._pool.close()
        if self._write_locks is not self._pool:
            await self._write_locks.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTransaction]:
        async with self._pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            work = PostgresTransaction(conn)
            try:
                yield work
                await work.append_audit()
            except BaseException:
                # A connection that broke mid-transaction cannot roll back; the server drops
                # the transaction with it, and the pool replaces the connection.
                with contextlib.suppress(asyncpg.InterfaceError, asyncpg.PostgresError, OSError):
                    await tx.rollback()
                raise
            await tx.commit()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection of the pool, for maintenance (`relay.migrate`), not for handlers."""
        async with _reset_after(self._pool) as conn:
            yield conn

    @asynccontextmanager
    async def exclusive(self, key: int = SWEEP_LOCK) -> AsyncIterator[bool]:
        """True while this instance holds the lock `key`, False if another one does (then do
        not do the work). Held on one connection until the block ends."""
        async with self._pool.acquire() as conn:
            held = bool(await _lock(conn, "SELECT pg_try_advisory_lock($1)", key))
            try:
                yield held
            finally:
                if held:
                    await _unlock(conn, "SELECT pg_advisory_unlock($1)", key)

    @asynccontextmanager
    async def object_write_lock(
        self, transfer_id: str, indices: Sequence[int]
    ) -> AsyncIterator[bool]:
        """True while this instance alone writes objects `indices` (ascending) of
        `transfer_id`; False if another writer (on any instance) still held one of them after
        `write_lock_wait` seconds. A batch's locks are held on one connection of the pool."""
        keys = [f"{transfer_id}/{index}" for index in indices]
        wait_ms = max(1, round(self.write_lock_wait * 1000))
        async with self._write_locks.acquire() as conn:
            try:
                # One round trip: the wait's limit is set for this statement only (its own
                # transaction), before the locks are asked for (the CTE is evaluated first),
                # in the order given (two batches cannot each wait for the other).
                await _lock(
                    conn,
                    "WITH wait AS MATERIALIZED (SELECT set_config('lock_timeout', $1, true)) "
                    "SELECT count(pg_advisory_lock($2, hashtext(k))) "
                    "FROM wait, unnest($3::text[]) AS k",
                    f"{wait_ms}ms",
                    OBJECT_WRITE_SPACE,
                    keys,
                )
            except asyncpg.LockNotAvailableError:
                # Those of the batch granted before the wait ran out stay with the session.
                await _unlock(conn, "SELECT pg_advisory_unlock_all()")
                held = False
            else:
                held = True
            try:
                yield held
            finally:
                if held:
                    await _unlock(
                        conn,
                        "SELECT count(pg_advisory_unlock($1, hashtext(k))) "
                        "FROM unnest($2::text[]) AS k",
                        OBJECT_WRITE_SPACE,
                        keys,
                    )

    async def audit_records(self, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """The audit records after record `after`, at most `limit` of them (all by default), in
        order, for operators and for `verify_audit_chain`: a reader that follows the trail
        reads each batch, not the whole trail again."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(SELECT_RECORDS_AFTER_PG, after, limit)
        return [dict(zip(RECORD_COLUMNS, tuple(r), strict=True)) for r in rows]


class PostgresTransaction:
    """`MetadataTransaction` on one connection inside an open transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._db = conn
        self._audit: list[tuple[AuditEvent, float]] = []

    async def _one(self, sql: str, *args: object) -> Any:
        return await self._db.fetchrow(sql, *args)

    async def _all(self, sql: str, *args: object) -> list[Any]:
        return list(await self._db.fetch(sql, *args))

    async def _site_lock(self, space: int, name: str) -> None:
        await self._db.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", space, name)

    # -- sites ---------------------------------------------------------------------------

    async def add_site(self, site: Site, credential_digest: bytes, now: float) -> None:
        inserted = await self._db.fetchval(
            "INSERT INTO sites (name, role, display_name, credential_digest, created_at) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING RETURNING 1",
            site.name,
            site.role,
            site.display_name,
            credential_digest,
            now,
        )
        if inserted is None:
            raise errors.SiteExists(f"A site named {site.name!r} already exists.")

    async def site_by_credential(self, credential_digest: bytes, now: float) -> Site | None:
        row = await self._one(
            f"SELECT {SITE_COLUMNS} FROM sites WHERE credential_digest = $1 "  # noqa: S608
            "OR (previous_credential_digest = $1 AND previous_until > $2)",
            credential_digest,
            now,
        )
        return Site(*row) if row else None

    async def site(self, name: str) -> Site | None:
        row = await self._one(
            f"SELECT {SITE_COLUMNS} FROM sites WHERE name = $1",  # noqa: S608
            name,
        )
        return Site(*row) if row else None

    async def sites(self, role: str | None = None) -> list[Site]:
        """The enabled sites (of `role`)."""
        rows = await self._all(
            f"SELECT {SITE_COLUMNS} FROM sites WHERE disabled_at IS NULL "  # noqa: S608
            "AND ($1::text IS NULL OR role = $1) ORDER BY name",
            role,
        )
        return [Site(*row) for row in rows]

    async def site_records(self) -> list[SiteRecord]:
        rows = await self._all(
            f"SELECT {SITE_COLUMNS}, created_at, previous_until, "  # noqa: S608
            "(SELECT COUNT(*) FROM transfers t WHERE (t.sender = s.name OR t.recipient = "
            "s.name) AND t.state NOT IN ('delivered', 'revoked', 'expired')) "
            "FROM sites s ORDER BY name"
        )
        return [
            SiteRecord(
                Site(*row[:4]), created_at=row[4], previous_until=row[5], open_transfers=row[6]
            )
            for row in rows
        ]

    async def rotate_credential(
        self, name: str, credential_digest: bytes, previous_until: float | None
    ) -> None:
        """A new credential for `name`; the old one works until `previous_until`, or no more."""
        await self._db.execute(
            "UPDATE sites SET previous_credential_digest = "
            "CASE WHEN $1 THEN credential_digest ELSE NULL END, previous_until = $2, "
            "credential_digest = $3 WHERE name = $4",
            previous_until is not None,
            previous_until,
            credential_digest,
            name,
        )

    async def set_site_disabled(self, name: str, disabled_at: float | None) -> None:
        await self._db.execute(
            "UPDATE sites SET disabled_at = $1 WHERE name = $2", disabled_at, name
        )

    async def note_sender_address(self, transfer_id: str, address: str) -> None:
        """Remember that the sending site used `address` for this transfer (a few at most)."""
        known = await self.sender_addresses(transfer_id)
        if address in known or len(known) >= MAX_SENDER_ADDRESSES:
            return
        await self._db.execute(
            "INSERT INTO transfer_origins (transfer_id, sender_addresses) VALUES ($1, $2) "
            "ON CONFLICT (transfer_id) DO UPDATE SET sender_addresses = excluded.sender_addresses",
            transfer_id,
            json.dumps([*known, address]),
        )

    async def sender_addresses(self, transfer_id: str) -> list[str]:
        row = await self._one(
            "SELECT sender_addresses FROM transfer_origins WHERE transfer_id = $1", transfer_id
        )
        return list(json.loads(row[0])) if row else []

    async def flag_consent_from_sender(self, transfer_id: str) -> None:
        await self._db.execute(
            "INSERT INTO transfer_origins (transfer_id, consent_from_sender) VALUES ($1, 1) "
            "ON CONFLICT (transfer_id) DO UPDATE SET consent_from_sender = 1",
            transfer_id,
        )

    async def consent_from_sender(self, transfer_id: str) -> bool:
        row = await self._one(
            "SELECT consent_from_sender FROM transfer_origins WHERE transfer_id = $1",
            transfer_id,
        )
        return bool(row and row[0])

    async def transfer_counts(self) -> dict[str, int]:
        """How many transfers the relay has in each stored state."""
        rows = await self._all("SELECT state, COUNT(*) FROM transfers GROUP BY state")
        return {str(state): int(count) for state, count in rows}

    async def open_transfer_count(self, sender: str, recipient: str | None = None) -> int:
        """How many transfers `sender` has open (to `recipient`, if given). Holds the sender's
        quota lock until the transaction ends, so a transfer it then creates is counted by the
        next instance that asks."""
        await self._site_lock(_QUOTA_SPACE, sender)
        row = await self._one(
            "SELECT COUNT(*) FROM transfers WHERE sender = $1 "
            "AND ($2::text IS NULL OR recipient = $2) "
            "AND state NOT IN ('delivered', 'revoked', 'expired')",
            sender,
            recipient,
        )
        return int(row[0])

    async def stored_bytes(
        self, *, sender: str | None = None, transfer_id: str | None = None
    ) -> int:
        """Sealed bytes acknowledged for the open transfers of `sender`, or for one transfer
        (each transfer's running sum, kept by `set_durable_offset`)."""
        where, args = ["state NOT IN ('delivered', 'revoked', 'expired')"], []
        if sender is not None:
            args.append(sender)
            where.append(f"sender = ${len(args)}")
        if transfer_id is not None:
            args.append(transfer_id)
            where.append(f"id = ${len(args)}")
        row = await self._one(
            "SELECT COALESCE(SUM(stored_bytes), 0)::bigint FROM transfers WHERE "  # noqa: S608
            + " AND ".join(where),
            *args,
        )
        return int(row[0])

    async def open_transfers_of(self, name: str) -> list[Transfer]:
        """The transfers `name` sent or is to receive that are neither delivered, revoked nor
        expired."""
        rows = await self._all(
            f"SELECT {TRANSFER_COLUMNS} FROM transfers WHERE (sender = $1 OR recipient = $1) "  # noqa: S608
            "AND state NOT IN ('delivered', 'revoked', 'expired') ORDER BY created_at, id "
            "FOR UPDATE",
            name,
        )
        return [transfer_from_row(row) for row in rows]

    # -- transfers -----------------------------------------------------------------------

    async def insert_transfer(self, transfer: Transfer) -> None:
        await self._db.execute(
            f"INSERT INTO transfers ({TRANSFER_COLUMNS}) "  # noqa: S608 - fixed column list
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            *transfer_values(transfer),
        )

    async def transfer(self, transfer_id: str) -> Transfer | None:
        """The transfer, locked for this transaction (another one reading it waits)."""
        row = await self._one(
            f"SELECT {TRANSFER_COLUMNS} FROM transfers WHERE id = $1 FOR UPDATE",  # noqa: S608
            transfer_id,
        )
        return transfer_from_row(row) if row else None

    async def save_transfer(self, transfer: Transfer) -> None:
        await self._db.execute(
            "UPDATE transfers SET state = $1, authorized_at = $2, authorized_by = $3, "
            "failed_attempts = $4, redeemed_at = $5, delivered_at = $6, revoked_at = $7, "
            "revoked_by = $8, expires_at = $9 WHERE id = $10",
            *saved_transfer_values(transfer),
        )

    async def locators_in_use(self, recipient: str) -> set[int]:
        """The locators taken at `recipient`. Holds the recipient's locator lock until the
        transaction ends, so no other instance hands out the one this transaction picks."""
        await self._site_lock(_LOCATOR_SPACE, recipient)
        rows = await self._all(
            "SELECT locator FROM transfers WHERE recipient = $1 AND (purged = 0 OR id IN "
            "(SELECT transfer_id FROM cancelled_locks))",
            recipient,
        )
        return {int(r[0]) for r in rows}

    async def transfer_by_locator(self, recipient: str, locator: int) -> Transfer | None:
        row = await self._one(
            f"SELECT {TRANSFER_COLUMNS} FROM transfers "  # noqa: S608
            "WHERE recipient = $1 AND locator = $2 AND purged = 0 "
            "ORDER BY created_at DESC LIMIT 1 FOR UPDATE",
            recipient,
            locator,
        )
        return transfer_from_row(row) if row else None

    async def transfer_by_authorization(self, digest: bytes) -> Transfer | None:
        row = await self._one(
            f"SELECT {TRANSFER_COLUMNS} FROM transfers WHERE authorization_digest = $1 "  # noqa: S608
            "FOR UPDATE",
            digest,
        )
        return transfer_from_row(row) if row else None

    async def set_authorization_digest(self, transfer_id: str, digest: bytes) -> None:
        await self._db.execute(
            "UPDATE transfers SET authorization_digest = $1 WHERE id = $2", digest, transfer_id
        )

    async def set_break_glass(self, transfer_id: str, sealed: bytes) -> None:
        await self._db.execute(
            "UPDATE transfers SET break_glass_sealed = $1 WHERE id = $2", sealed, transfer_id
        )

    async def break_glass(self, transfer_id: str) -> bytes | None:
        row = await self._one("SELECT break_glass_sealed FROM transfers WHERE id = $1", transfer_id)
        return bytes(row[0]) if row and row[0] is not None else None

    async def set_receipt(self, transfer_id: str, receipt: str) -> None:
        await self._db.execute(
            "UPDATE transfers SET receipt = $1 WHERE id = $2", receipt, transfer_id
        )

    async def receipt(self, transfer_id: str) -> str | None:
        row = await self._one("SELECT receipt FROM transfers WHERE id = $1", transfer_id)
        return str(row[0]) if row and row[0] is not None else None

    async def due_for_purge(self, now: float, delivered_before: float) -> list[Transfer]:
        rows = await self._all(
            f"SELECT {TRANSFER_COLUMNS} FROM transfers "  # noqa: S608
            "WHERE purged = 0 AND (expires_at <= $1 OR state IN ('revoked', 'expired') "
            "OR (state = 'delivered' AND delivered_at <= $2))",
            now,
            delivered_before,
        )
        return [transfer_from_row(r) for r in rows]

    async def mark_purged(self, transfer_id: str) -> None:
        await self._db.execute(
            "UPDATE transfers SET purged = 1, authorization_digest = NULL, "
            "break_glass_sealed = NULL WHERE id = $1",
            transfer_id,
        )
        await self._db.execute("DELETE FROM phone_blobs WHERE transfer_id = $1", transfer_id)

    # -- key locks -----------------------------------------------------------------------

    async def put_lock(self, transfer_id: str, kind: str, lock: StoredLock) -> None:
        await self._db.execute(
            "INSERT INTO key_locks (transfer_id, kind, salt, verifier, wrapped_key) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (transfer_id, kind) DO UPDATE SET "
            "salt = excluded.salt, verifier = excluded.verifier, "
            "wrapped_key = excluded.wrapped_key",
            transfer_id,
            kind,
            lock.salt,
            lock.verifier,
            lock.wrapped_key,
        )

    async def lock(self, transfer_id: str, kind: str) -> StoredLock | None:
        row = await self._one(
            "SELECT salt, verifier, wrapped_key FROM key_locks "
            "WHERE transfer_id = $1 AND kind = $2",
            transfer_id,
            kind,
        )
        return StoredLock(bytes(row[0]), bytes(row[1]), bytes(row[2])) if row else None

    async def delete_locks(self, transfer_id: str) -> None:
        await self._db.execute("DELETE FROM key_locks WHERE transfer_id = $1", transfer_id)

    async def keep_cancelled_locks(self, transfer_id: str) -> None:
        """Keep the salts and verifiers (not the wrapped keys) of a transfer the patient or
        family cancelled, before its locks are deleted."""
        await self._db.execute(
            "INSERT INTO cancelled_locks (transfer_id, kind, salt, verifier) "
            "SELECT transfer_id, kind, salt, verifier FROM key_locks WHERE transfer_id = $1 "
            "ON CONFLICT DO NOTHING",
            transfer_id,
        )

    async def cancelled_lock(
        self, recipient: str, kind: str, key: int | str
    ) -> CancelledLock | None:
        """The kept lock of `kind` of the newest cancelled transfer to `recipient` with this
        locator (`key` an int) or id (`key` a str)."""
        column = "t.locator" if isinstance(key, int) else "t.id"
        row = await self._one(
            "SELECT c.salt, c.verifier FROM cancelled_locks c "  # noqa: S608 - a fixed column
            f"JOIN transfers t ON t.id = c.transfer_id WHERE t.recipient = $1 AND {column} = $2 "
            "AND c.kind = $3 ORDER BY t.created_at DESC LIMIT 1",
            recipient,
            key,
            kind,
        )
        return CancelledLock(bytes(row[0]), bytes(row[1])) if row else None

    async def forget_cancelled_locks(self, now: float) -> None:
        """Drop the kept locks of cancelled transfers past their expiry."""
        await self._db.execute(
            "DELETE FROM cancelled_locks WHERE transfer_id IN "
            "(SELECT id FROM transfers WHERE expires_at <= $1)",
            now,
        )

    # -- sealed phone blobs (summary, code, authorizer) -----------------------------------

    async def put_phone_blob(self, transfer_id: str, kind: str, sealed: bytes) -> None:
        await self._db.execute(
            "INSERT INTO phone_blobs (transfer_id, kind, sealed) VALUES ($1, $2, $3) "
            "ON CONFLICT (transfer_id, kind) DO UPDATE SET sealed = excluded.sealed",
            transfer_id,
            kind,
            sealed,
        )

    async def phone_blob(self, transfer_id: str, kind: str) -> bytes | None:
        row = await self._one(
            "SELECT sealed FROM phone_blobs WHERE transfer_id = $1 AND kind = $2",
            transfer_id,
            kind,
        )
        return bytes(row[0]) if row else None

    # -- objects -------------------------------------------------------------------------

    async def object_status(self, transfer_id: str, index: int) -> ObjectStatus | None:
        row = await self._one(
            "SELECT idx, durable_offset, complete, size, sha256 FROM objects "
            "WHERE transfer_id = $1 AND idx = $2",
            transfer_id,
            index,
        )
        return ObjectStatus(row[0], row[1], bool(row[2]), row[3], row[4]) if row else None

    async def object_statuses(self, transfer_id: str) -> list[ObjectStatus]:
        rows = await self._all(
            "SELECT idx, durable_offset, complete, size, sha256 FROM objects "
            "WHERE transfer_id = $1 ORDER BY idx",
            transfer_id,
        )
        return [ObjectStatus(r[0], r[1], bool(r[2]), r[3], r[4]) for r in rows]

    async def set_durable_offset(self, transfer_id: str, index: int, offset: int) -> None:
        # The transfer's running sum moves by the object's change, in the same statement (the
        # transfer's row lock, taken first as before, keeps concurrent writers in step; the
        # subquery reads the object's offset as it was before this statement).
        await self._db.execute(
            "WITH moved AS (UPDATE transfers SET stored_bytes = stored_bytes + $1 - COALESCE("
            "(SELECT durable_offset FROM objects WHERE transfer_id = $2 AND idx = $3), 0) "
            "WHERE id = $2 RETURNING id) "
            "INSERT INTO objects (transfer_id, idx, durable_offset) SELECT id, $3, $1 FROM moved "
            "ON CONFLICT (transfer_id, idx) DO UPDATE SET durable_offset = excluded.durable_offset",
            offset,
            transfer_id,
            index,
        )

    async def complete_object(self, transfer_id: str, index: int, size: int, sha256: str) -> None:
        await self._db.execute(
            "UPDATE objects SET complete = 1, size = $1, sha256 = $2 "
            "WHERE transfer_id = $3 AND idx = $4",
            size,
            sha256,
            transfer_id,
            index,
        )

    # -- manifest ------------------------------------------------------------------------

    async def put_manifest_record(self, transfer_id: str, record: ManifestRecord) -> None:
        await self._db.execute(
            "INSERT INTO manifest_records (transfer_id, seq, final, record) "
            "VALUES ($1, $2, $3, $4)",
            transfer_id,
            record.seq,
            int(record.final),
            record.record,
        )
        if record.final:
            await self._db.execute(
                "UPDATE transfers SET manifest_closed = 1 WHERE id = $1", transfer_id
            )

    async def manifest_record(self, transfer_id: str, seq: int) -> ManifestRecord | None:
        row = await self._one(
            "SELECT seq, final, record FROM manifest_records WHERE transfer_id = $1 AND seq = $2",
            transfer_id,
            seq,
        )
        return ManifestRecord(row[0], bool(row[1]), bytes(row[2])) if row else None

    async def manifest_records(
        self, transfer_id: str, from_seq: int, limit: int
    ) -> list[ManifestRecord]:
        rows = await self._all(
            "SELECT seq, final, record FROM manifest_records "
            "WHERE transfer_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3",
            transfer_id,
            from_seq,
            limit,
        )
        return [ManifestRecord(r[0], bool(r[1]), bytes(r[2])) for r in rows]

    async def manifest_closed(self, transfer_id: str) -> bool:
        row = await self._one("SELECT manifest_closed FROM transfers WHERE id = $1", transfer_id)
        return bool(row and row[0])

    async def manifest_count(self, transfer_id: str) -> int:
        row = await self._one(
            "SELECT COUNT(*) FROM manifest_records WHERE transfer_id = $1", transfer_id
        )
        return int(row[0]) if row else 0

    async def delete_manifest(self, transfer_id: str) -> None:
        await self._db.execute("DELETE FROM manifest_records WHERE transfer_id = $1", transfer_id)

    # -- audit ---------------------------------------------------------------------------

    async def audit(self, event: AuditEvent, now: float) -> None:
        """Kept until the transaction commits (`append_audit`), so the chain's lock is held
        only for the moment of appending."""
        self._audit.append((event, now))

    async def append_audit(self) -> None:
        """Append this transaction's audit records to the one chain, in order."""
        if not self._audit:
            return
        # The chain's lock, then its last record, in one call (schema_pg/003).
        row = await self._one(
            "SELECT last_seq, last_hash FROM audit_chain_tail($1)", AUDIT_CHAIN_LOCK
        )
        seq, prev = (int(row[0]), bytes(row[1])) if row[0] is not None else (0, GENESIS)
        for event, now in self._audit:
            prev, values = chained_record(event, now, prev)
            seq += 1
            await self._db.execute(
                "INSERT INTO audit (seq, at, event_id, action, actor, actor_role, transfer_id, "
                "outcome, detail, remote, prev_hash, hash) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                seq,
                *values,
            )
        self._audit.clear()

    # -- redemption ids ------------------------------------------------------------------

    async def set_redemption_digest(self, transfer_id: str, digest: bytes) -> None:
        await self._db.execute(
            "UPDATE transfers SET redemption_digest = $1 WHERE id = $2", digest, transfer_id
        )

    async def redemption_digest(self, transfer_id: str) -> bytes | None:
        row = await self._one("SELECT redemption_digest FROM transfers WHERE id = $1", transfer_id)
        return bytes(row[0]) if row and row[0] is not None else None
