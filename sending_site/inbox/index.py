"""The inbox index: patients, studies, series and instances as they arrive (SQLite, aiosqlite).

One connection in WAL mode with synchronous=FULL, used only from the asyncio loop; pynetdicom's
threads reach it through `asyncio.run_coroutine_threadsafe` (see `scp`). Other processes (the
console, `handoff`) may open it read-only beside the running agent. The schema is the numbered
`.sql` files in `schema/`, applied in order; `PRAGMA user_version` says how far a file is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from sending_site.inbox import errors
from sending_site.inbox.arrival import Arrival, Patient, Refusal, conflict
from sending_site.inbox.records import SeriesRecord, StudyRecord


def schema_steps() -> list[tuple[int, str]]:
    """(version, SQL) for every file `schema/NNN_name.sql`, in version order."""
    folder = resources.files("sending_site.inbox") / "schema"
    return sorted(
        (int(entry.name.partition("_")[0]), entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )


@dataclass(frozen=True)
class Kept:
    """The instance is indexed; `replaced` is the id of an earlier copy's file, now unused."""

    replaced: str | None = None


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


def _patient(row: Any) -> Patient:
    return Patient(*row[:5])


def _read_only_uri(path: Path) -> str:
    if not path.exists():
        raise errors.StudyNotSpooled(
            f"There is no inbox index at {path}: the agent has not received anything into "
            "that spool folder."
        )
    return f"{path.resolve().as_uri()}?mode=ro"


class InboxIndex:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._lock = asyncio.Lock()

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
                await db.execute("PRAGMA journal_mode=WAL")
                await db.execute("PRAGMA synchronous=FULL")
            except aiosqlite.Error as e:
                raise errors.SpoolUnusable(
                    f"The inbox index {path} cannot be opened ({e}). Check the spool folder."
                ) from e
        await db.execute("PRAGMA foreign_keys=ON")
        index = cls(db)
        try:
            await index._upgrade(read_only)
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

    async def close(self) -> None:
        await self._db.close()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        async with self._lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")

    # One round trip to aiosqlite's thread each (`execute` + `fetchone` + closing a cursor
    # would be three): an image's record makes several of these.
    async def _one(self, sql: str, *args: object) -> Any:
        rows = await self._all(sql, *args)
        return rows[0] if rows else None

    async def _all(self, sql: str, *args: object) -> list[Any]:
        return list(await self._db.execute_fetchall(sql, args))

    async def _insert(self, sql: str, *args: object) -> int:
        row = await self._db.execute_insert(sql, args)
        if row is None:  # an INSERT always sets a row id
            raise RuntimeError(f"no row id after {sql}")
        return int(row[0])

    # -- arrivals -------------------------------------------------------------------------

    async def record(self, arrival: Arrival) -> Kept | Refusal:
        """Index one kept instance, or refuse it (`arrival.conflict`) and change nothing.
        Committed (durable) when this returns `Kept`."""
        return (await self.record_all([arrival]))[0]

    async def record_all(self, arrivals: Sequence[Arrival]) -> list[Kept | Refusal]:
        """Index kept instances in order, in one transaction (one flush to disk), each kept or
        refused as `record` would; all committed (durable) when this returns. Raises (and
        changes nothing) if the database fails."""
        async with self._transaction():
            return [await self._recorded(arrival) for arrival in arrivals]

    async def _recorded(self, arrival: Arrival) -> Kept | Refusal:
        study = await self._one(
            "SELECT s.id, p.patient_id, p.issuer, p.name, p.birth_date, p.sex "
            "FROM studies s JOIN patients p ON p.id = s.patient "
            "WHERE s.study_instance_uid = ?",
            arrival.study_instance_uid,
        )
        series = await self._one(
            "SELECT se.id, st.study_instance_uid FROM series se "
            "JOIN studies st ON st.id = se.study WHERE se.series_instance_uid = ?",
            arrival.series_instance_uid,
        )
        earlier = await self._one(
            "SELECT i.id, i.file, st.study_instance_uid, se.series_instance_uid "
            "FROM instances i JOIN series se ON se.id = i.series "
            "JOIN studies st ON st.id = se.study WHERE i.sop_instance_uid = ?",
            arrival.sop_instance_uid,
        )
        refused = conflict(
            arrival,
            study_patient=_patient(study[1:]) if study else None,
            series_study=series[1] if series else None,
            earlier_home=(earlier[2], earlier[3]) if earlier else None,
        )
        if refused:
            return refused
        study_id = study[0] if study else await self._new_study(arrival)
        series_id = series[0] if series else await self._new_series(arrival, study_id)
        await self._db.execute(
            "UPDATE studies SET first_arrival = min(first_arrival, ?), "
            "last_arrival = max(last_arrival, ?) WHERE id = ?",
            (arrival.arrived_at, arrival.arrived_at, study_id),
        )
        if arrival.slice_thickness_mm is not None:
            await self._db.execute(
                "UPDATE series SET thinnest_slice_mm = "
                "min(coalesce(thinnest_slice_mm, ?), ?) WHERE id = ?",
                (arrival.slice_thickness_mm, arrival.slice_thickness_mm, series_id),
            )
        if earlier:
            await self._db.execute("DELETE FROM instances WHERE id = ?", (earlier[0],))
        await self._db.execute(
            "INSERT INTO instances (sop_instance_uid, series, sop_class_uid, "
            "transfer_syntax_uid, instance_number, file, size, arrived_at, calling_ae_title) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                arrival.sop_instance_uid,
                series_id,
                arrival.sop_class_uid,
                arrival.transfer_syntax_uid,
                arrival.instance_number,
                arrival.instance_id,
                arrival.size,
                arrival.arrived_at,
                arrival.calling_ae_title,
            ),
        )
        return Kept(replaced=earlier[1] if earlier else None)

    async def _new_study(self, a: Arrival) -> int:
        p = a.patient
        await self._db.execute(
            "INSERT OR IGNORE INTO patients (patient_id, issuer, name, birth_date, sex) "
            "VALUES (?, ?, ?, ?, ?)",
            (p.patient_id, p.issuer, p.name, p.birth_date, p.sex),
        )
        patient = await self._one(
            "SELECT id FROM patients WHERE patient_id = ? AND issuer = ? AND name = ? "
            "AND birth_date = ?",
            *p.identity,
        )
        return await self._insert(
            "INSERT INTO studies (study_instance_uid, patient, accession_number, study_date, "
            "study_time, description, first_arrival, last_arrival) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            a.study_instance_uid,
            patient[0],
            a.accession_number,
            a.study_date,
            a.study_time,
            a.study_description,
            a.arrived_at,
            a.arrived_at,
        )

    async def _new_series(self, a: Arrival, study_id: int) -> int:
        return await self._insert(
            "INSERT INTO series (series_instance_uid, study, modality, series_number, "
            "description) VALUES (?, ?, ?, ?, ?)",
            a.series_instance_uid,
            study_id,
            a.modality,
            a.series_number,
            a.series_description,
        )

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
        return [StudyListing(r[5], _patient(r), *r[6:]) for r in rows]

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
        accession, date, time_of_day, description, first, last = row[6:]
        return StudyRecord(
            study_instance_uid,
            _patient(row),
            accession,
            date,
            time_of_day,
            description,
            first,
            last,
            tuple(SeriesRecord(*s) for s in series),
            study_id=row[5],
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
