"""The embedded metadata store: one SQLite file in WAL mode.

Every transaction holds an asyncio lock, so transactions never interleave on the single
connection. The statements run on the event loop (small indexed reads and writes: a trip to a
thread per statement cost more than the statement); what waits on the disk or on another process
runs in a worker thread: a `BEGIN IMMEDIATE` that finds the write lock held by another process
(it is first tried without waiting, on the loop) and a `COMMIT` that has changes to write. A
transaction that changed nothing commits on the loop: there is nothing to write.

Group commit: a `COMMIT` writes the transaction to the WAL file (`synchronous=NORMAL`), and the
lock is released before the WAL is fsynced, so the next transactions run meanwhile; one fsync
then covers every commit written before it started. `transaction()` returns only once every
commit made up to its end (its own, and any it may have read) is on disk: what it acknowledges,
or shows, survives a crash, as with `synchronous=FULL`, which fsyncs once per commit while
holding the lock. A failed fsync fails every transaction after it (`StorageUnavailable`): the
relay is restarted, and SQLite recovers from what is on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from relay import errors
from relay.lifecycle import Transfer
from relay.storage.audit_chain import GENESIS, RECORD_COLUMNS, SELECT_RECORDS_AFTER
from relay.storage.audit_chain import audit_chain_intact as audit_chain_intact
from relay.storage.audit_chain import verify_audit_chain as verify_audit_chain
from relay.storage.models import (
    AuditEvent,
    CancelledLock,
    ManifestRecord,
    ObjectStatus,
    Site,
    SiteRecord,
    StoredLock,
)
from relay.storage.offloop import off_loop
from relay.storage.permissions import owner_only
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

BUSY_TIMEOUT_MS = 5000  # `sqlite3.connect`'s default timeout


class _Connection:
    """The `sqlite3` connection, with the awaitable `execute` the queries below use. Used by one
    thread at a time: the event loop's, or a worker's while the loop waits for it."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    async def execute(self, sql: str, parameters: tuple[object, ...] = ()) -> None:
        self.conn.execute(sql, parameters)


class SqliteMetadata:
    """`MetadataStore` and `MetadataTransaction` over one `sqlite3` connection."""

    def __init__(self, conn: sqlite3.Connection, wal: int) -> None:
        self._conn = conn
        self._db = _Connection(conn)
        self._lock = asyncio.Lock()
        self._wal = wal  # a descriptor of the WAL file, to fsync it
        self._commits = 0  # transactions committed to the WAL file (in the page cache)
        self._durable = 0  # how many of the first of them an fsync is known to have covered
        self._sync: asyncio.Future[None] | None = None  # the fsync under way
        self._sync_failed: BaseException | None = None
        self.wal_syncs = 0  # fsyncs of the WAL file made for commits

    @property
    def durable_commits(self) -> int:
        """How many transactions with changes are known to be on disk (since opening)."""
        return self._durable

    @classmethod
    async def open(cls, path: Path) -> SqliteMetadata:
        """The relay's database at `path`, created if new, readable by the relay's user only
        (SQLite gives its -wal and -shm files the database file's permissions)."""
        conn = await off_loop(_connect, path)
        try:
            # Upgraded with synchronous=FULL; the WAL file exists from then on, as long as this
            # connection is open (SQLite removes it only when the last connection closes).
            wal = await off_loop(_upgrade_and_open_wal, conn, path)
        except BaseException:
            await off_loop(conn.close)
            raise
        owner_only(path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
        return cls(conn, wal)

    async def announce(self, transfer_id: str) -> None:
        """Nothing to do: one relay process serves a SQLite file, and wakes its own waiters."""

    async def listen(self, wake: Callable[[str], None]) -> None:
        """Nothing to do: no other relay instance shares a SQLite file."""

    async def recent_guess_failures(
        self, keys: Sequence[str], since: float, most: int
    ) -> dict[str, list[float]] | None:
        """`MetadataStore.recent_guess_failures`: only this process writes them, but they are
        kept, so a restart does not give a guesser new tries."""
        marks = ", ".join("?" for _ in keys)
        found: dict[str, list[float]] = {key: [] for key in keys}
        async with self.transaction():
            rows = self._conn.execute(
                "SELECT key, at FROM (SELECT key, at, row_number() OVER "  # noqa: S608
                "(PARTITION BY key ORDER BY at DESC) AS latest FROM guess_failures "
                f"WHERE key IN ({marks}) AND at > ?) WHERE latest <= ? ORDER BY at",
                (*keys, since, most),
            ).fetchall()
        for key, at in rows:
            found[key].append(float(at))
        return found

    async def count_guess_failure(self, keys: Sequence[str], at: float, since: float) -> None:
        """`MetadataStore.count_guess_failure`: one row per key, the rows from before `since`
        deleted."""
        async with self.transaction():
            self._conn.execute("DELETE FROM guess_failures WHERE at <= ?", (since,))
            self._conn.executemany(
                "INSERT INTO guess_failures (key, at) VALUES (?, ?)", [(k, at) for k in keys]
            )

    async def close(self) -> None:
        async with self._lock:
            while self._sync is not None:  # an fsync under way ends first
                await asyncio.wait([self._sync])
            await off_loop(self._conn.close)
            os.close(self._wal)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteMetadata]:
        async with self._lock:
            if self._sync_failed is not None:
                raise errors.StorageUnavailable() from self._sync_failed
            try:
                await self._begin()
            except BaseException:
                if self._conn.in_transaction:  # begun, but the caller was cancelled meanwhile
                    self._conn.execute("ROLLBACK")
                raise
            changes = self._conn.total_changes
            try:
                yield self
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            try:
                if self._conn.total_changes == changes:
                    # Nothing written: the COMMIT only releases the lock.
                    self._conn.execute("COMMIT")
                else:
                    try:
                        await off_loop(self._conn.execute, "COMMIT")
                    finally:
                        # Counted even if it failed or its caller was cancelled (`off_loop`
                        # still waited for it): whoever reads what it wrote waits for an fsync.
                        self._commits += 1
            finally:
                # A COMMIT that failed, or was cancelled while it ran: nothing acknowledged.
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
            written = self._commits
        # Outside the lock: the next transactions run while this waits for the disk.
        await self._on_disk(written)

    async def _on_disk(self, commits: int) -> None:
        """Return once the first `commits` commits are on disk: wait for the fsync under way,
        or start one, covering every commit written before it starts (one fsync for all the
        transactions that ended meanwhile). Raises `StorageUnavailable` if an fsync failed."""
        while self._durable < commits:
            if self._sync_failed is not None:
                raise errors.StorageUnavailable() from self._sync_failed
            if self._sync is None:
                self._sync = asyncio.ensure_future(self._fsync_wal(self._commits))
                # Its failure is told to the waiters, and kept; not also logged as unretrieved.
                self._sync.add_done_callback(lambda f: f.cancelled() or f.exception())
            # Shielded: a cancelled waiter does not cancel the fsync the others wait for.
            with contextlib.suppress(Exception):  # a failure is kept, and raised above
                await asyncio.shield(self._sync)

    async def _fsync_wal(self, covers: int) -> None:
        try:
            await off_loop(os.fsync, self._wal)
        except Exception as e:
            # Fail closed: after a failed fsync a later one may succeed without the lost pages
            # having reached the disk, so no commit may count as durable any more.
            self._sync_failed = e
            raise
        else:
            self.wal_syncs += 1
            self._durable = max(self._durable, covers)
        finally:
            self._sync = None

    async def _begin(self) -> None:
        """`BEGIN IMMEDIATE`: first on the loop without waiting for the write lock; if another
        process holds it, again in a worker thread, waiting as long as the connection's busy
        timeout."""
        conn = self._conn
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as e:
            if e.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise
        finally:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await off_loop(conn.execute, "BEGIN IMMEDIATE")

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[bool]:
        """Always True: one relay process owns the embedded database."""
        yield True

    @asynccontextmanager
    async def object_write_lock(
        self, transfer_id: str, indices: Sequence[int]
    ) -> AsyncIterator[bool]:
        """Always True: one relay process owns the embedded database, and the upload handlers
        already write one object at a time within a process."""
        yield True

    async def _one(self, sql: str, *args: object) -> Any:
        return self._conn.execute(sql, args).fetchone()

    async def _all(self, sql: str, *args: object) -> list[Any]:
        return self._conn.execute(sql, args).fetchall()

    # -- sites ---------------------------------------------------------------------------

    async def add_site(self, site: Site, credential_digest: bytes, now: float) -> None:
        if await self._one("SELECT 1 FROM sites WHERE name = ?", site.name):
            raise errors.SiteExists(f"A site named {site.name!r} already exists.")
        await self._db.execute(
            "INSERT INTO sites (name, role, display_name, credential_digest, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (site.name, site.role, site.display_name, credential_digest, now),
        )

    async def site_by_credential(self, credential_digest: bytes, now: float) -> Site | None:
        row = await self._one(
            f"SELECT {SITE_COLUMNS} FROM sites WHERE credential_digest = ? "  # noqa: S608
            "OR (previous_credential_digest = ? AND previous_until > ?)",
            credential_digest,
            credential_digest,
            now,
        )
        return Site(*row) if row else None

    async def site(self, name: str) -> Site | None:
        row = await self._one(
            f"SELECT {SITE_COLUMNS} FROM sites WHERE name = ?",  # noqa: S608
            name,
        )
        return Site(*row) if row else None

    async def sites(self, role: str | None = None) -> list[Site]:
        """The enabled sites (of `role`)."""
        rows = await self._all(
            f"SELECT {SITE_COLUMNS} FROM sites WHERE disabled_at IS NULL "  # noqa: S608
            "AND (? IS NULL OR role = ?) ORDER BY name",
            role,
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
        keep = previous_until is not None
        await self._db.execute(
            "UPDATE sites SET previous_credential_digest = "
            "CASE WHEN ? THEN credential_digest ELSE NULL END, previous_until = ?, "
            "credential_digest = ? WHERE name = ?",
            (keep, previous_until, credential_digest, name),
        )

    async def set_site_disabled(self, name: str, disabled_at: float | None) -> None:
        await self._db.execute(
            "UPDATE sites SET disabled_at = ? WHERE name = ?", (disabled_at, name)
        )

    async def note_sender_address(self, transfer_id: str, address: str) -> None:
        """Remember that the sending site used `address` for this transfer (a few at most)."""
        known = await self.sender_addresses(transfer_id)
        if address in known or len(known) >= MAX_SENDER_ADDRESSES:
            return
        await self._db.execute(
            "INSERT INTO transfer_origins (transfer_id, sender_addresses) VALUES (?, ?) "
            "ON CONFLICT (transfer_id) DO UPDATE SET sender_addresses = excluded.sender_addresses",
            (transfer_id, json.dumps([*known, address])),
        )

    async def sender_addresses(self, transfer_id: str) -> list[str]:
        row = await self._one(
            "SELECT sender_addresses FROM transfer_origins WHERE transfer_id = ?", transfer_id
        )
        return list(json.loads(row[0])) if row else []

    async def flag_consent_from_sender(self, transfer_id: str) -> None:
        await self._db.execute(
            "INSERT INTO transfer_origins (transfer_id, consent_from_sender) VALUES (?, 1) "
            "ON CONFLICT (transfer_id) DO UPDATE SET consent_from_sender = 1",
            (transfer_id,),
        )

    async def consent_from_sender(self, transfer_id: str) -> bool:
        row = await self._one(
            "SELECT consent_from_sender FROM transfer_origins WHERE transfer_id = ?", transfer_id
        )
        return bool(row and row[0])

    async def transfer_counts(self) -> dict[str, int]:
        """How many transfers the relay has in each stored state."""
        rows = await self._all("SELECT state, COUNT(*) FROM transfers GROUP BY state")
        return {str(state): int(count) for state, count in rows}

    async def open_transfer_count(self, sender: str, recipient: str | None = None) -> int:
        """How many transfers `sender` has open (to `recipient`, if given)."""
        row = await self._one(
            "SELECT COUNT(*) FROM transfers WHERE sender = ? AND (? IS NULL OR recipient = ?) "
            "AND state NOT IN ('delivered', 'revoked', 'expired')",
            sender,
            recipient,
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
            where.append("sender = ?")
            args.append(sender)
        if transfer_id is not None:
            where.append("id = ?")
            args.append(transfer_id)
        row = await self._one(
            "SELECT COALESCE(SUM(stored_bytes), 0) FROM transfers WHERE "  # noqa: S608
            + " AND ".join(where),
            *args,
        )
        return int(row[0])

    async def open_transfers_of(self, name: str) -> list[Transfer]:
        """The transfers `name` sent or is to receive that are neither delivered, revoked nor
        expired."""
        rows = await self._all(
            f"SELECT {TRANSFER_COLUMNS} FROM transfers WHERE (sender = ? OR recipient = ?) "  # noqa: S608
            "AND state NOT IN ('delivered', 'revoked', 'expired') ORDER BY created_at",
            name,
            name,
        )
        return [transfer_from_row(row) for row in rows]

    # -- transfers -----------------------------------------------------------------------

    async def insert_transfer(self, transfer: Transfer) -> None:
        await self._db.execute(
            f"INSERT INTO transfers ({TRANSFER_COLUMNS}) "  # noqa: S608 - fixed column list
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            transfer_values(transfer),
        )

    async def transfer(self, transfer_id: str) -> Transfer | None:
        row = await self._one(
            f"SELECT {TRANSFER_COLUMNS} FROM transfers WHERE id = ?",  # noqa: S608
            transfer_id,
        )
        return transfer_from_row(row) if row else None

    async def save_transfer(self, transfer: Transfer) -> None:
        await self._db.execute(
            "UPDATE transfers SET state = ?, authorized_at = ?, authorized_by = ?, "
            "failed_attempts = ?, redeemed_at = ?, delivered_at = ?, revoked_at = ?, "
            "revoked_by = ?, expires_at = ? WHERE id = ?",
            saved_transfer_values(transfer),
        )

    async def locators_in_use(self, recipient: str) -> set[int]:
        rows = await self._all(
            "SELECT locator FROM transfers WHERE recipient = ? AND (purged = 0 OR id IN "
            "(SELECT transfer_id FROM cancelled_locks))",
            recipient,
        )
        return {int(r[0]) for r in rows}

    async def transfer_by_locator(self, recipient: str, locator: int) -> Transfer | None:
        row = await self._one(
            f"SELECT {TRANSFER_COLUMNS} FROM transfers "  # noqa: S608
            "WHERE recipient = ? AND locator = ? AND purged = 0 "
            "ORDER BY created_at DESC LIMIT 1",
            recipient,
            locator,
        )
        return transfer_from_row(row) if row else None

    async def transfer_by_authorization(self, digest: bytes) -> Transfer | None:
        row = await self._one(
            f"SELECT {TRANSFER_COLUMNS} FROM transfers WHERE authorization_digest = ?",  # noqa: S608
            digest,
        )
        return transfer_from_row(row) if row else None

    async def set_authorization_digest(self, transfer_id: str, digest: bytes) -> None:
        await self._db.execute(
            "UPDATE transfers SET authorization_digest = ? WHERE id = ?", (digest, transfer_id)
        )

    async def set_break_glass(self, transfer_id: str, sealed: bytes) -> None:
        await self._db.execute(
            "UPDATE transfers SET break_glass_sealed = ? WHERE id = ?", (sealed, transfer_id)
        )

    async def break_glass(self, transfer_id: str) -> bytes | None:
        row = await self._one("SELECT break_glass_sealed FROM transfers WHERE id = ?", transfer_id)
        return bytes(row[0]) if row and row[0] is not None else None

    async def set_receipt(self, transfer_id: str, receipt: str) -> None:
        await self._db.execute(
            "UPDATE transfers SET receipt = ? WHERE id = ?", (receipt, transfer_id)
        )

    async def receipt(self, transfer_id: str) -> str | None:
        row = await self._one("SELECT receipt FROM transfers WHERE id = ?", transfer_id)
        return str(row[0]) if row and row[0] is not None else None

    async def due_for_purge(self, now: float, delivered_before: float) -> list[Transfer]:
        rows = await self._all(
            f"SELECT {TRANSFER_COLUMNS} FROM transfers "  # noqa: S608
            "WHERE purged = 0 AND (expires_at <= ? OR state IN ('revoked', 'expired') "
            "OR (state = 'delivered' AND delivered_at <= ?))",
            now,
            delivered_before,
        )
        return [transfer_from_row(r) for r in rows]

    async def mark_purged(self, transfer_id: str) -> None:
        await self._db.execute(
            "UPDATE transfers SET purged = 1, authorization_digest = NULL, "
            "break_glass_sealed = NULL WHERE id = ?",
            (transfer_id,),
        )
        await self._db.execute("DELETE FROM phone_blobs WHERE transfer_id = ?", (transfer_id,))

    # -- key locks -----------------------------------------------------------------------

    async def put_lock(self, transfer_id: str, kind: str, lock: StoredLock) -> None:
        await self._db.execute(
            "INSERT INTO key_locks (transfer_id, kind, salt, verifier, wrapped_key) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (transfer_id, kind) DO UPDATE SET "
            "salt = excluded.salt, verifier = excluded.verifier, "
            "wrapped_key = excluded.wrapped_key",
            (transfer_id, kind, lock.salt, lock.verifier, lock.wrapped_key),
        )

    async def lock(self, transfer_id: str, kind: str) -> StoredLock | None:
        row = await self._one(
            "SELECT salt, verifier, wrapped_key FROM key_locks WHERE transfer_id = ? AND kind = ?",
            transfer_id,
            kind,
        )
        return StoredLock(bytes(row[0]), bytes(row[1]), bytes(row[2])) if row else None

    async def delete_locks(self, transfer_id: str) -> None:
        await self._db.execute("DELETE FROM key_locks WHERE transfer_id = ?", (transfer_id,))

    async def keep_cancelled_locks(self, transfer_id: str) -> None:
        """Keep the salts and verifiers (not the wrapped keys) of a transfer the patient or
        family cancelled, before its locks are deleted."""
        await self._db.execute(
            "INSERT OR IGNORE INTO cancelled_locks (transfer_id, kind, salt, verifier) "
            "SELECT transfer_id, kind, salt, verifier FROM key_locks WHERE transfer_id = ?",
            (transfer_id,),
        )

    async def cancelled_lock(
        self, recipient: str, kind: str, key: int | str
    ) -> CancelledLock | None:
        """The kept lock of `kind` of the newest cancelled transfer to `recipient` with this
        locator (`key` an int) or id (`key` a str)."""
        column = "t.locator" if isinstance(key, int) else "t.id"
        row = await self._one(
            "SELECT c.salt, c.verifier FROM cancelled_locks c "  # noqa: S608 - a fixed column
            f"JOIN transfers t ON t.id = c.transfer_id WHERE t.recipient = ? AND {column} = ? "
            "AND c.kind = ? ORDER BY t.created_at DESC LIMIT 1",
            recipient,
            key,
            kind,
        )
        return CancelledLock(bytes(row[0]), bytes(row[1])) if row else None

    async def forget_cancelled_locks(self, now: float) -> None:
        """Drop the kept locks of cancelled transfers past their expiry."""
        await self._db.execute(
            "DELETE FROM cancelled_locks WHERE transfer_id IN "
            "(SELECT id FROM transfers WHERE expires_at <= ?)",
            (now,),
        )

    # -- sealed phone blobs (summary, code, authorizer) -----------------------------------

    async def put_phone_blob(self, transfer_id: str, kind: str, sealed: bytes) -> None:
        await self._db.execute(
            "INSERT INTO phone_blobs (transfer_id, kind, sealed) VALUES (?, ?, ?) "
            "ON CONFLICT (transfer_id, kind) DO UPDATE SET sealed = excluded.sealed",
            (transfer_id, kind, sealed),
        )

    async def phone_blob(self, transfer_id: str, kind: str) -> bytes | None:
        row = await self._one(
            "SELECT sealed FROM phone_blobs WHERE transfer_id = ? AND kind = ?", transfer_id, kind
        )
        return bytes(row[0]) if row else None

    # -- objects -------------------------------------------------------------------------

    async def object_status(self, transfer_id: str, index: int) -> ObjectStatus | None:
        row = await self._one(
            "SELECT idx, durable_offset, complete, size, sha256 FROM objects "
            "WHERE transfer_id = ? AND idx = ?",
            transfer_id,
            index,
        )
        return ObjectStatus(row[0], row[1], bool(row[2]), row[3], row[4]) if row else None

    async def object_statuses(self, transfer_id: str) -> list[ObjectStatus]:
        rows = await self._all(
            "SELECT idx, durable_offset, complete, size, sha256 FROM objects "
            "WHERE transfer_id = ? ORDER BY idx",
            transfer_id,
        )
        return [ObjectStatus(r[0], r[1], bool(r[2]), r[3], r[4]) for r in rows]

    async def set_durable_offset(self, transfer_id: str, index: int, offset: int) -> None:
        # The transfer's running sum moves by the object's change, in the same transaction.
        await self._db.execute(
            "UPDATE transfers SET stored_bytes = stored_bytes + ? - COALESCE((SELECT "
            "durable_offset FROM objects WHERE transfer_id = ? AND idx = ?), 0) WHERE id = ?",
            (offset, transfer_id, index, transfer_id),
        )
        await self._db.execute(
            "INSERT INTO objects (transfer_id, idx, durable_offset) VALUES (?, ?, ?) "
            "ON CONFLICT (transfer_id, idx) DO UPDATE SET durable_offset = excluded.durable_offset",
            (transfer_id, index, offset),
        )

    async def complete_object(self, transfer_id: str, index: int, size: int, sha256: str) -> None:
        await self._db.execute(
            "UPDATE objects SET complete = 1, size = ?, sha256 = ? "
            "WHERE transfer_id = ? AND idx = ?",
            (size, sha256, transfer_id, index),
        )

    # -- manifest ------------------------------------------------------------------------

    async def put_manifest_record(self, transfer_id: str, record: ManifestRecord) -> None:
        await self._db.execute(
            "INSERT INTO manifest_records (transfer_id, seq, final, record) VALUES (?, ?, ?, ?)",
            (transfer_id, record.seq, int(record.final), record.record),
        )
        if record.final:
            await self._db.execute(
                "UPDATE transfers SET manifest_closed = 1 WHERE id = ?", (transfer_id,)
            )

    async def manifest_record(self, transfer_id: str, seq: int) -> ManifestRecord | None:
        row = await self._one(
            "SELECT seq, final, record FROM manifest_records WHERE transfer_id = ? AND seq = ?",
            transfer_id,
            seq,
        )
        return ManifestRecord(row[0], bool(row[1]), bytes(row[2])) if row else None

    async def manifest_records(
        self, transfer_id: str, from_seq: int, limit: int
    ) -> list[ManifestRecord]:
        rows = await self._all(
            "SELECT seq, final, record FROM manifest_records "
            "WHERE transfer_id = ? AND seq >= ? ORDER BY seq LIMIT ?",
            transfer_id,
            from_seq,
            limit,
        )
        return [ManifestRecord(r[0], bool(r[1]), bytes(r[2])) for r in rows]

    async def manifest_closed(self, transfer_id: str) -> bool:
        row = await self._one("SELECT manifest_closed FROM transfers WHERE id = ?", transfer_id)
        return bool(row and row[0])

    async def manifest_count(self, transfer_id: str) -> int:
        row = await self._one(
            "SELECT COUNT(*) FROM manifest_records WHERE transfer_id = ?", transfer_id
        )
        return int(row[0]) if row else 0

    async def delete_manifest(self, transfer_id: str) -> None:
        await self._db.execute("DELETE FROM manifest_records WHERE transfer_id = ?", (transfer_id,))

    # -- audit ---------------------------------------------------------------------------

    async def audit(self, event: AuditEvent, now: float) -> None:
        row = await self._one("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1")
        prev = bytes(row[0]) if row else GENESIS
        _, values = chained_record(event, now, prev)
        await self._db.execute(
            "INSERT INTO audit (at, event_id, action, actor, actor_role, transfer_id, outcome, "
            "detail, remote, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            values,
        )

    async def audit_records(self, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """The audit records after record `after`, at most `limit` of them (all by default), in
        order, for operators and for `verify_audit_chain`."""
        rows = await self._all(SELECT_RECORDS_AFTER, after, -1 if limit is None else limit)
        return [dict(zip(RECORD_COLUMNS, r, strict=True)) for r in rows]

    # -- redemption ids ------------------------------------------------------------------

    async def set_redemption_digest(self, transfer_id: str, digest: bytes) -> None:
        await self._db.execute(
            "UPDATE transfers SET redemption_digest = ? WHERE id = ?", (digest, transfer_id)
        )

    async def redemption_digest(self, transfer_id: str) -> bytes | None:
        row = await self._one("SELECT redemption_digest FROM transfers WHERE id = ?", transfer_id)
        return bytes(row[0]) if row and row[0] is not None else None


def _upgrade_and_open_wal(conn: sqlite3.Connection, path: Path) -> int:
    """Apply the schema steps not applied yet, each in its own transaction (fsynced by SQLite),
    then switch to `synchronous=NORMAL` (the WAL is fsynced by `transaction()`); a descriptor
    of the WAL file."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    for number, sql in schema_steps("schema"):
        if number <= int(version):
            continue
        conn.executescript(f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
    # Opened before any commit it must make durable: an fsync through it reports every
    # write-back error of the file from then on.
    wal = os.open(path.with_name(path.name + "-wal"), os.O_RDONLY)
    try:
        os.fsync(wal)
        conn.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        os.close(wal)
        raise
    return wal


def _connect(path: Path) -> sqlite3.Connection:
    # Autocommit (`isolation_level=None`): the transactions are `transaction()`'s own.
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
    )
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        conn.close()
        raise
    return conn
