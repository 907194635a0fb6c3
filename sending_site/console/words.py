"""How the ER console says a study, a completeness report, an upload's progress, and a
transfer that moved on under a page left open: pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sending_site.inbox.arrival import Patient
from sending_site.inbox.completeness import CompletenessReport
from sending_site.push import Progress
from site_agent.dicom_text import date, how_many_images, person_name
from transfer_codes.wire import TransferState


class AStudy(Protocol):
    @property
    def patient(self) -> Patient: ...
    @property
    def accession_number(self) -> str: ...
    @property
    def study_date(self) -> str: ...
    @property
    def description(self) -> str: ...


@dataclass(frozen=True)
class StudyWords:
    patient: str
    medical_record_number: str
    birth_date: str
    sex: str
    accession_number: str
    study_date: str
    description: str


def study_words(study: AStudy) -> StudyWords:
    p = study.patient
    return StudyWords(
        patient=person_name(p.name),
        medical_record_number=p.patient_id or "not given",
        birth_date=date(p.birth_date),
        sex=p.sex or "not given",
        accession_number=study.accession_number or "not given",
        study_date=date(study.study_date),
        description=study.description or "(no description)",
    )


def readiness(report: CompletenessReport | None) -> str:
    """One short phrase for the list of recent studies (the PACS is compared on the study's
    page): still arriving, no thin slices, or ready to check."""
    if report is None:
        return ""
    if not report.stable:
        return "Images still arriving"
    if report.no_thin_slices:
        return "No thin-slice series"
    return "Arrived; open to check and send"


def progress_words(
    progress: Progress | None,
    upload_finished: bool,
    arriving: bool = False,
    stopped: bool = False,
) -> str:
    """The upload's progress in one line; `arriving`: the study is still arriving, and the
    upload follows it (the total is not known yet); `stopped`: its push stopped before the
    upload finished (the page says why beside), so nothing is being prepared or sent."""
    if upload_finished:
        return "Upload complete."
    mb = 1024 * 1024
    if stopped:
        if progress is None or not progress.objects_done:
            return "The upload stopped before the first image was sent."
        return (
            f"The upload stopped at {progress.objects_done} of {progress.objects_total} images "
            f"({progress.bytes_done / mb:.1f} of {progress.bytes_total / mb:.1f} MB)."
        )
    if arriving:
        sent = progress.objects_done if progress else 0
        size = progress.bytes_done / mb if progress else 0.0
        return (
            f"Images still arriving: {how_many_images(sent)} sent so far "
            f"({size:.1f} MB). The upload goes on until the study is complete."
        )
    if progress is None:
        return "Preparing the upload..."
    return (
        f"Uploading: {progress.objects_done} of {progress.objects_total} images "
        f"({progress.bytes_done / mb:.1f} of {progress.bytes_total / mb:.1f} MB)."
    )


def percent(progress: Progress | None, upload_finished: bool) -> int:
    if upload_finished:
        return 100
    if progress is None or progress.bytes_total <= 0:
        return 0
    return min(100, int(100 * progress.bytes_done / progress.bytes_total))


# Since a page was opened, the transfer moved on to where the relay allows no new code.
MOVED_ON: dict[str, str] = {
    TransferState.REDEEMED: "was opened by the trauma center with its code",
    TransferState.DELIVERED: "was delivered to the trauma center",
    TransferState.REVOKED: "was revoked",
    TransferState.EXPIRED: "expired",
}


def moved_on(state: str, discarded: bool) -> str:
    """What a page left open says when its "Give a new code" meets a transfer in `state`
    (`discarded`: at the trauma center, after review), where the relay allows none."""
    if discarded:
        what = "was discarded at the trauma center after review"
    else:
        what = MOVED_ON.get(state, f"is {state.replace('_', ' ')} now")
    return (
        f"No new code was given, and nothing was changed: since this page was opened, this "
        f"transfer {what}. Where it stands now is below."
    )
