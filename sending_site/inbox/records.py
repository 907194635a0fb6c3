"""What the index answers about a study: plain frozen records, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from sending_site.inbox.arrival import Patient


@dataclass(frozen=True)
class SeriesRecord:
    series_instance_uid: str
    series_number: int | None
    modality: str
    description: str
    instances: int
    thinnest_slice_mm: float | None  # None when no image of the series gave a thickness


@dataclass(frozen=True)
class RefusedImages:
    """Images that came for a study but named another patient than it is held under, so the
    inbox refused them: kept nowhere, never sent. Of them the index holds only how many, from
    which AE titles and when; nothing of the patient they named."""

    images: int
    sources: tuple[str, ...]  # the calling AE titles that sent them, sorted
    last_refused: float  # seconds since the epoch


@dataclass(frozen=True)
class StudyRecord:
    study_instance_uid: str
    patient: Patient
    accession_number: str
    study_date: str
    study_time: str
    description: str
    first_arrival: float  # seconds since the epoch
    last_arrival: float
    series: tuple[SeriesRecord, ...]
    study_id: int = 0  # the index's own id: what the console's addresses name, never the UID
    refused: RefusedImages | None = None  # images of another patient refused; None if none

    @property
    def instances(self) -> int:
        return sum(s.instances for s in self.series)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(sorted({s.modality for s in self.series if s.modality}))

    def seconds_since_last_image(self, now: float) -> float:
        """How long no image has arrived (never negative, whatever the clocks did)."""
        return max(0.0, now - self.last_arrival)
