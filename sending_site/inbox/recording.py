"""Writing arrivals into the inbox index, in batches: one transaction, one flush to disk.

Plain `sqlite3` on a connection of its own (WAL lets the index's aiosqlite connection read
beside it), run on a worker thread by `InboxIndex.record_all`: a batch of images costs one
hand-off between threads instead of several per SQL statement. Not thread-safe: the caller
runs one batch at a time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sending_site.inbox.arrival import Arrival, Patient, Refusal, conflict


@dataclass(frozen=True)
class Kept:
    """The instance is indexed; `replaced` is the id of a file now unused: an earlier copy's,
    or this arrival's own when its data set is byte for byte the copy already indexed (which
    then stays, under its file, as it was)."""

    replaced: str | None = None


# Whether the spool files of two ids hold the same data set (`Spool.same_data_set`).
SameDataSet = Callable[[str, str], bool]


def patient_of(row: Any) -> Patient:
    """The patient in the first five columns of an index row."""
    return Patient(*row[:5])


class Recorder:
    """The index's writer. `open` and the methods raise `sqlite3.Error`."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    @classmethod
    def open(cls, path: Path) -> Recorder:
        """A writer for the index at `path`, already created and upgraded (WAL)."""
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            db.close()
            raise
        return cls(db)

    def close(self) -> None:
        self._db.close()

    def record_all(
        self, arrivals: Sequence[Arrival], same: SameDataSet | None = None
    ) -> list[Kept | Refusal]:
        """Index kept instances in order, in one transaction, each kept or refused
        (`arrival.conflict`, changing nothing but, for an image naming another patient than
        its study's, the record of that refusal); all durable when this returns. With `same`,
        an instance indexed already whose file holds the same data set keeps its earlier
        file, and the new one is the unused one (`Kept.replaced`), so a push that named the
        earlier file can still send it; it still counts as an arrival of its study. The files
        are compared before the transaction, which stays short. Raises (and changes nothing)
        if the database fails."""
        same_as = self._same_as_indexed(arrivals, same) if same is not None else {}
        self._db.execute("BEGIN IMMEDIATE")
        try:
            outcomes = [self._recorded(a, same_as.get(a.instance_id)) for a in arrivals]
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:  # a failed COMMIT may leave it open
                self._db.execute("ROLLBACK")
            raise
        return outcomes

    def _same_as_indexed(self, arrivals: Sequence[Arrival], same: SameDataSet) -> dict[str, str]:
        """For each arrival whose instance is indexed already with the same data set: its
        file id, to the earlier copy's file id. Read outside the write transaction, which
        uses it only if that copy is still the one indexed."""
        found: dict[str, str] = {}
        for arrival in arrivals:
            earlier = self._one(
                "SELECT file FROM instances WHERE sop_instance_uid = ?", arrival.sop_instance_uid
            )
            if earlier and same(earlier[0], arrival.instance_id):
                found[arrival.instance_id] = earlier[0]
        return found

    def _one(self, sql: str, *args: object) -> Any:
        return self._db.execute(sql, args).fetchone()

    def _insert(self, sql: str, *args: object) -> int:
        row_id = self._db.execute(sql, args).lastrowid
        if row_id is None:  # an INSERT always sets it
            raise RuntimeError(f"no row id after {sql}")
        return row_id

    def _recorded(self, arrival: Arrival, same_as: str | None) -> Kept | Refusal:
        """Index `arrival`, or refuse it. `same_as`: the file of the copy already indexed
        whose data set `arrival`'s file holds too, if there is one."""
        study = self._one(
            "SELECT s.id, p.patient_id, p.issuer, p.name, p.birth_date, p.sex "
            "FROM studies s JOIN patients p ON p.id = s.patient "
            "WHERE s.study_instance_uid = ?",
            arrival.study_instance_uid,
        )
        series = self._one(
            "SELECT se.id, st.study_instance_uid FROM series se "
            "JOIN studies st ON st.id = se.study WHERE se.series_instance_uid = ?",
            arrival.series_instance_uid,
        )
        earlier = self._one(
            "SELECT i.id, i.file, st.study_instance_uid, se.series_instance_uid "
            "FROM instances i JOIN series se ON se.id = i.series "
            "JOIN studies st ON st.id = se.study WHERE i.sop_instance_uid = ?",
            arrival.sop_instance_uid,
        )
        refused = conflict(
            arrival,
            study_patient=patient_of(study[1:]) if study else None,
            series_study=series[1] if series else None,
            earlier_home=(earlier[2], earlier[3]) if earlier else None,
        )
        if refused:
            if refused.another_patient and study:
                self._refused(arrival, study[0])
            return refused
        # Kept now (corrected at the scanner or the PACS and sent again): no longer refused.
        self._db.execute(
            "DELETE FROM refused_images WHERE sop_instance_uid = ?", (arrival.sop_instance_uid,)
        )
        study_id = study[0] if study else self._new_study(arrival)
        series_id = series[0] if series else self._new_series(arrival, study_id)
        self._db.execute(
            "UPDATE studies SET first_arrival = min(first_arrival, ?), "
            "last_arrival = max(last_arrival, ?) WHERE id = ?",
            (arrival.arrived_at, arrival.arrived_at, study_id),
        )
        if arrival.slice_thickness_mm is not None:
            self._db.execute(
                "UPDATE series SET thinnest_slice_mm = "
                "min(coalesce(thinnest_slice_mm, ?), ?) WHERE id = ?",
                (arrival.slice_thickness_mm, arrival.slice_thickness_mm, series_id),
            )
        if earlier and same_as is not None and earlier[1] == same_as:
            return Kept(replaced=arrival.instance_id)  # sent again as it was: the first stays
        if earlier:
            self._db.execute("DELETE FROM instances WHERE id = ?", (earlier[0],))
        self._db.execute(
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

    def _refused(self, a: Arrival, study_id: int) -> None:
        """Record that `a`, of the study `study_id`, was refused for naming another patient:
        once per image, however often it is sent again, and nothing of whom it named (the
        inbox holds nothing else of that patient)."""
        self._db.execute(
            "INSERT INTO refused_images (study, sop_instance_uid, refused_at, calling_ae_title) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (study, sop_instance_uid) DO UPDATE SET "
            "refused_at = excluded.refused_at, calling_ae_title = excluded.calling_ae_title",
            (study_id, a.sop_instance_uid, a.arrived_at, a.calling_ae_title),
        )

    def _new_study(self, a: Arrival) -> int:
        p = a.patient
        self._db.execute(
            "INSERT OR IGNORE INTO patients (patient_id, issuer, name, birth_date, sex) "
            "VALUES (?, ?, ?, ?, ?)",
            (p.patient_id, p.issuer, p.name, p.birth_date, p.sex),
        )
        patient = self._one(
            "SELECT id FROM patients WHERE patient_id = ? AND issuer = ? AND name = ? "
            "AND birth_date = ?",
            *p.identity,
        )
        return self._insert(
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

    def _new_series(self, a: Arrival, study_id: int) -> int:
        return self._insert(
            "INSERT INTO series (series_instance_uid, study, modality, series_number, "
            "description) VALUES (?, ?, ?, ?, ?)",
            a.series_instance_uid,
            study_id,
            a.modality,
            a.series_number,
            a.series_description,
        )
