"""Reading the audit table straight from the relay's database, read-only: an auditor's command
never writes to it, and works while the relay runs (SQLite's WAL lets readers in; PostgreSQL,
when the relay's configuration names one, is read as it is)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relay import errors
from relay.config import load
from relay.sites import open_data_folder, open_store
from relay.storage.audit_chain import RECORD_COLUMNS, SELECT_RECORDS_AFTER

Record = dict[str, Any]
PAGE = 5000  # records read at a time by `each_audit_record`


def read_audit_records(
    data_dir: Path,
    *,
    after: int = 0,
    limit: int | None = None,
    config_file: Path | None = None,
) -> list[Record]:
    """Every audit record in `seq` order, as `SqliteMetadata.audit_records()` gives them; with
    `after` and `limit`, only the next `limit` records after record `after`.

    Raises `NoRelayData` when `data_dir` holds no relay database, and `AuditTrailUnreadable`
    when the file there is not one SQLite can read as a relay's. The storage is the one the
    relay's `config_file` (`--config`), if any, names."""
    config = load(data_dir, config_file=config_file)
    if config.metadata_url is not None:
        return asyncio.run(_read_shared(data_dir, after, limit, config_file))
    database = open_data_folder(data_dir, create=False)
    try:
        with contextlib.closing(sqlite3.connect(_read_only_uri(database), uri=True)) as db:
            bounds = (after, -1 if limit is None else limit)  # LIMIT -1: no limit
            rows = db.execute(SELECT_RECORDS_AFTER, bounds).fetchall()
    except sqlite3.Error as e:
        raise errors.AuditTrailUnreadable(
            f"The audit trail in {database} could not be read ({e}). Give --data the folder the "
            "relay runs with."
        ) from e
    return [dict(zip(RECORD_COLUMNS, row, strict=True)) for row in rows]


def each_audit_record(
    data_dir: Path, *, page: int = PAGE, config_file: Path | None = None
) -> Iterator[Record]:
    """Every audit record in `seq` order, read `page` at a time: an auditor's command over a
    trail of millions of records holds one page, not the trail. Raises as
    `read_audit_records` does."""
    after = 0
    while records := read_audit_records(data_dir, after=after, limit=page, config_file=config_file):
        yield from records
        after = int(records[-1]["seq"])


async def _read_shared(
    data_dir: Path, after: int, limit: int | None, config_file: Path | None
) -> list[Record]:
    """The records from the PostgreSQL database the relay's configuration names (read only:
    its schema is not touched), as `read_audit_records` selects them."""
    store = await open_store(data_dir, create=False, upgrade=False, config_file=config_file)
    try:
        return await store.audit_records(after, limit)
    finally:
        await store.close()


def _read_only_uri(database: Path) -> str:
    """While the relay runs (its write-ahead log is there), read alongside it. When it has
    stopped, its last close put everything into the database file: read that file as it is
    (`immutable`), for a read-only open would leave a -wal and -shm file of this user behind,
    which a relay running as another user could not open."""
    uri = database.resolve().as_uri() + "?mode=ro"
    running = database.with_name(database.name + "-wal").exists()
    return uri if running else uri + "&immutable=1"


@dataclass(frozen=True)
class Period:
    """The records an export covers: `since` (inclusive) to `until` (exclusive), in Unix
    seconds; None is open-ended."""

    since: float | None = None
    until: float | None = None

    def covers(self, record: Record) -> bool:
        at = float(record["at"])
        return (self.since is None or at >= self.since) and (self.until is None or at < self.until)


def parsed_detail(record: Record) -> object:
    """A record's detail as JSON; a tampered row's that is not JSON, as the text it is."""
    try:
        return json.loads(str(record["detail"]))
    except ValueError:
        return record["detail"]


def instant(text: str, *, end_of_day: bool) -> float:
    """Unix seconds for an ISO 8601 date or date and time (UTC unless it says otherwise). A date
    alone is the start of that day, or with `end_of_day` the start of the next, so a period
    `--since D1 --until D2` takes in all of D2. Raises ValueError for anything else."""
    try:
        day = datetime.date.fromisoformat(text)
    except ValueError:
        moment = datetime.datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        return moment.timestamp()
    start = datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC)
    if end_of_day:
        start += datetime.timedelta(days=1)
    return start.timestamp()


def iso_time(at: float) -> str:
    """`at` (Unix seconds) as ISO 8601 UTC with milliseconds, e.g. 2026-12-03T13:40:00.123Z."""
    moment = datetime.datetime.fromtimestamp(at, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
