"""The inbox index: patients, studies, series and instances as they arrive (SQLite, aiosqlite).

WAL mode with synchronous=FULL. Questions go through an aiosqlite connection, used only from
the asyncio loop; arrivals are written in batches by a plain connection of their own on a
worker thread (`recording`), one batch at a time. pynetdicom's threads reach the index through
`asyncio.run_coroutine_threadsafe` (see `scp` and `group_commit`). Other processes (the
console, `handoff`) may open it read-only beside the running agent. The schema is the numbered
`.sql` files in `schema/`, applied in order; `PRAGMA user_version` says how far a file is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from sending_site.inbox import errors
from sending_site.inbox.arrival import Arrival, Patient, Refusal
from sending_site.inbox.recording import Kept, Recorder, SameDataSet, patient_of
from sending_site.inbox.records import RefusedImages, SeriesRecord, StudyRecord

__all__ = ["InboxIndex", "Kept", "StudyListing", "schema_steps"]


REFUSED_IMAGES = 2  # the schema version that records images refused for another patient


def schema_steps() -> list[tuple[int, str]]:
    """(version, SQL) for every file `schema/NNN_name.sql`, in version order."""
    folder = resources.files("sending_site.inbox") / "schema"
    return sorted(
        (int(entry.name.partition("_")[0]), entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )


@dataclass(frozen=True)
class StudyListing:
    study_instance_uid: str
    patient: Patient
    accession_number: str
    study_date: str
    description: str
    series: int
    instances: int
    last_arrival: float
    study_id: int = 0  # the index's own id: what the console's addresses name, never the UID


def _read_only_uri(path: Path) -> str:
    if not path.exists():
        raise errors.StudyNotSpooled(
            f"There is no inbox index at {path}: the agent has not received anything into "
            "that spool folder."
        )
    return f"{path.resolve().as_uri()}?mode=ro"


class InboxIndex:
    def __init__(self, db: aiosqlite.Connection, recorder: Recorder | None = None) -> None:
        self._db = db
        self._recorder = recorder  # the writer; None when read-only
        self._lock = asyncio.Lock()  # one batch at a time on the writer
        self._version = 0  # the schema's, once opened (a read-only one is not upgraded)

    @classmethod
    async def open(cls, path: Path, *, read_only: bool = False) -> InboxIndex:
        """Open (and create or upgrade, unless `read_only`) the index at `path`.
        Raises `IndexTooNew`, `StudyNotSpooled` (read-only and no index) or `SpoolUnusable`."""
        if read_only:
            uri = await asyncio.to_thread(_read_only_uri, path)
            db = await aiosqlite.connect(uri, uri=True)
        else:
            try:
                db = await aiosqlite.connect(path, isolation_level=None)
            except aiosqlite.Error as e:
                raise errors.SpoolUnusable(
                    f"The inbox index {path} cannot be opened ({e}). Check the spool folder."
                ) from e
        index = cls(db)
        try:
            if not read_only:
                await db.execute("PRAGMA journal_mode=WAL")
                await db.execute("PRAGMA synchronous=FULL")
            await db.execute("PRAGMA foreign_keys=ON")
            await index._upgrade(read_only)
            if not read_only:
                index._recorder = await asyncio.to_thread(Recorder.open, path)
        except aiosqlite.Error as e:  # sqlite3.Error, from the recorder too
            await db.close()
            raise errors.SpoolUnusable(
                f"The inbox index {path} cannot be opened ({e}). Check the spool folder."
            ) from e
        except BaseException:
            await db.close()
            raise
        return index

    async def _upgrade(self, read_only: bool) -> None:
        async with self._db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        steps = schema_steps()
        if version > steps[-1][0]:
            raise errors.IndexTooNew()
        for number, sql in steps:
            if number > version and not read_only:
                script = f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;"
                await self._db.executescript(script)
                version = number
        self._version = version

    async def close(self) -> None:
        if self._recorder is not None:
            async with self._lock:
                await asyncio.to_thread(self._recorder.close)
        await self._db.close()

    # One round trip to aiosqlite's thread each (`execute` + `fetchone` + closing a cursor
    # would be three).
    async def _one(self, sql: str, *args: object) -> Any:
        rows = await self._all(sql, *args)
        return rows[0] if rows else None

    async def _all(self, sql: str, *args: object) -> list[Any]:
        return list(await self._db.execute_fetchall(sql, args))

    # -- arrivals -------------------------------------------------------------------------

    async def record(self, arrival: Arrival, *, same: SameDataSet | None = None) -> Kept | Refusal:
        """Index one kept instance, or refuse it (`arrival.conflict`) and change nothing but
        the record of an image refused for naming another patient than its study's.
        With `same`, one indexed already with the same data set keeps its earlier file
        (`Recorder.record_all`). Committed (durable) when this returns `Kept`."""
        return (await self.record_all([arrival], same=same))[0]

    async def record_all(
        self,
        arrivals: Sequence[Arrival],
        *,
        first: Callable[[], None] | None = None,
        same: SameDataSet | None = None,
    ) -> list[Kept | Refusal]:
        """Index kept instances in order, in one transaction (one flush to disk), each kept or
        refused as `record` would; all committed (durable) when this returns. `first`, if
        given, runs on the same worker thread just before the transaction (one hand-off to a
        thread for both), and what it raises is raised with nothing indexed. `same`: as for
        `record`. Raises (and changes nothing) if the database fails. Not on a read-only
        index."""
        recorder = self._recorder
        if recorder is None:
            raise RuntimeError("the index was opened read-only")

        def first_then_record() -> list[Kept | Refusal]:
            if first is not None:
                first()
            return recorder.record_all(arrivals, same)

        async with self._lock:
            return await asyncio.to_thread(first_then_record)

    # -- questions ------------------------------------------------------------------------

    async def studies(self, search: str = "", limit: int = 50) -> list[StudyListing]:
        """The most recently received studies first; `search` matches the start of the
        patient's name, ID or the accession number, in any case."""
        pattern = search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = await self._all(
            "SELECT p.patient_id, p.issuer, p.name, p.birth_date, p.sex, st.study_instance_uid, "
            "st.accession_number, st.study_date, st.description, count(DISTINCT se.id), "
            "count(i.id), st.last_arrival, st.id "
            "FROM studies st JOIN patients p ON p.id = st.patient "
            "LEFT JOIN series se ON se.study = st.id LEFT JOIN instances i ON i.series = se.id "
            "WHERE ? = '' OR p.name LIKE ? || '%' ESCAPE '\\' "
            "OR p.patient_id LIKE ? || '%' ESCAPE '\\' "
            "OR st.accession_number LIKE ? || '%' ESCAPE '\\' "
            "GROUP BY st.id ORDER BY st.last_arrival DESC LIMIT ?",
            pattern,
            pattern,
            pattern,
            pattern,
            limit,
        )
        # The columns after the patient's are StudyListing's fields, in order.
        return [StudyListing(r[5], patient_of(r), *r[6:]) for r in rows]

    async def study(self, study_instance_uid: str) -> StudyRecord | None:
        """The study with its series and their instance counts, or None."""
        row = await self._one(
            "SELECT p.patient_id, p.issuer, p.name, p.birth_date, p.sex, st.id, "
            "st.accession_number, st.study_date, st.study_time, st.description, "
            "st.first_arrival, st.last_arrival "
            "FROM studies st JOIN patients p ON p.id = st.patient "
            "WHERE st.study_instance_uid = ?",
            study_instance_uid,
        )
        if row is None:
            return None
        series = await self._all(
            "SELECT se.series_instance_uid, se.series_number, se.modality, se.description, "
            "count(i.id), se.thinnest_slice_mm FROM series se "
            "LEFT JOIN instances i ON i.series = se.id WHERE se.study = ? "
            "GROUP BY se.id ORDER BY se.series_number IS NULL, se.series_number, se.id",
            row[5],
        )
        # An index not upgraded yet (read beside an agent of the version before) has no
        # record of refusals.
        refused = (
            await self._all(
                "SELECT calling_ae_title, count(*), max(refused_at) FROM refused_images "
                "WHERE study = ? GROUP BY calling_ae_title ORDER BY calling_ae_title",
                row[5],
            )
            if self._version >= REFUSED_IMAGES
            else []
        )
        accession, date, time_of_day, description, first, last = row[6:]
        return StudyRecord(
            study_instance_uid,
            patient_of(row),
            accession,
            date,
            time_of_day,
            description,
            first,
            last,
            tuple(SeriesRecord(*s) for s in series),
            study_id=row[5],
            refused=RefusedImages(
                sum(r[1] for r in refused),
                tuple(r[0] for r in refused),
                max(r[2] for r in refused),
            )
            if refused
            else None,
        )

    async def study_instance_uid(self, study_id: int) -> str | None:
        """The Study Instance UID of the study the index calls `study_id`, or None."""
        row = await self._one("SELECT study_instance_uid FROM studies WHERE id = ?", study_id)
        return None if row is None else str(row[0])

    async def study_files(self, study_instance_uid: str) -> list[str]:
        """The spool ids of the study's instances, by series then instance number."""
        rows = await self._all(
            "SELECT i.file FROM instances i JOIN series se ON se.id = i.series "
            "JOIN studies st ON st.id = se.study WHERE st.study_instance_uid = ? "
            "ORDER BY se.series_number IS NULL, se.series_number, se.id, "
            "i.instance_number IS NULL, i.instance_number, i.id",
            study_instance_uid,
        )
        return [r[0] for r in rows]

    async def indexed_files(self) -> set[str]:
        """The spool id of every indexed instance."""
        return {r[0] for r in await self._all("SELECT file FROM instances")}
