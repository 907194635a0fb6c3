"""Whether a received study looks whole before its code is issued: pure, no I/O.

DICOM has no "study complete" signal, so three things are weighed: the image count of each
series against the PACS's (Number of Series Related Instances), how long no image has arrived
(the configurable stable age), and, for CT, whether a thin-slice series (1.5 mm or thinner)
came: missing thin slices are the commonest reason a trauma center repeats an outside CT
(DOMAIN.md). Images the inbox refused because they named another patient under the same
study are said first: sent as it is, the study goes without them. Staff may send anyway; the
report says what to check, in plain words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from sending_site.inbox.queries import PacsSeries
from sending_site.inbox.records import RefusedImages, SeriesRecord, StudyRecord
from site_agent.local_time import how_long

THIN_SLICE_MM = 1.5


class SeriesState(StrEnum):
    COMPLETE = "complete"  # at least as many images as the PACS holds
    PARTIAL = "partial"  # fewer than the PACS holds
    MISSING = "missing"  # the PACS holds the series; none of it arrived
    NOT_IN_PACS = "not in PACS"  # arrived, but the PACS does not list it (sent by a scanner)
    UNKNOWN = "unknown"  # the PACS was not asked, or gave no count


@dataclass(frozen=True)
class SeriesCheck:
    series_instance_uid: str
    series_number: int | None
    modality: str
    description: str
    received: int
    in_pacs: int | None
    state: SeriesState

    @property
    def label(self) -> str:
        name = f"Series {self.series_number}" if self.series_number is not None else "A series"
        return f"{name} ({self.description})" if self.description else name


@dataclass(frozen=True)
class CompletenessReport:
    study_instance_uid: str
    series: tuple[SeriesCheck, ...]
    compared_with_pacs: bool
    seconds_since_last_image: float
    stable_after: float  # seconds
    no_thin_slices: bool  # a CT study without a series of slices 1.5 mm or thinner
    pacs_problem: str = ""  # why the PACS could not be asked, when it could not
    refused: RefusedImages | None = None  # images refused for naming another patient

    @property
    def stable(self) -> bool:
        return self.seconds_since_last_image >= self.stable_after

    @property
    def counts_match(self) -> bool:
        """The PACS was asked and every series it holds has arrived whole."""
        whole = (SeriesState.COMPLETE, SeriesState.NOT_IN_PACS)
        return self.compared_with_pacs and all(s.state in whole for s in self.series)

    @property
    def complete(self) -> bool:
        return (
            self.counts_match and self.stable and not self.no_thin_slices and self.refused is None
        )

    @property
    def refused_images(self) -> int:
        """How many images of another patient were refused for this study."""
        return self.refused.images if self.refused else 0

    def warned_about(self) -> set[str]:
        """What `findings` warn about, by kind, without the counts that change as images come
        (a series short of images stays one item however many it lacks) and without images
        still arriving (the upload follows them): a warning staff have not seen is one whose
        item is not among those of the page they read."""
        items = {
            f"series {s.label}"
            for s in self.series
            if s.state in _SHORT or (s.state is SeriesState.UNKNOWN and self.compared_with_pacs)
        }
        if self.refused:
            items.add("images of another patient refused")
        if not self.compared_with_pacs:
            items.add("counts not checked")
        if self.no_thin_slices:
            items.add("no thin slices")
        return items

    def findings(self) -> list[str]:
        """What staff should know before sending, one plain sentence each; empty if none."""
        found = [_refused_words(self.refused)] if self.refused else []
        if not self.compared_with_pacs:
            found.append(
                "The image counts could not be checked against the PACS"
                + (f" ({self.pacs_problem.rstrip('.')})" if self.pacs_problem else "")
                + "; check with the technologist that every series was sent."
            )
        for s in self.series:
            if s.state is SeriesState.PARTIAL:
                found.append(f"{s.label}: {s.received} of its {s.in_pacs} images have arrived.")
            elif s.state is SeriesState.MISSING:
                found.append(f"{s.label}: none of its {s.in_pacs} images have arrived.")
            elif s.state is SeriesState.UNKNOWN and self.compared_with_pacs:
                found.append(f"{s.label}: the PACS did not say how many images it holds.")
        if not self.stable:
            found.append(
                f"Images were still arriving {how_long(self.seconds_since_last_image)} ago; "
                f"wait until none has arrived for {how_long(self.stable_after)}."
            )
        if self.no_thin_slices:
            found.append(
                f"This CT study has no thin-slice series ({THIN_SLICE_MM:g} mm or thinner). "
                "Missing thin slices are the commonest reason a trauma center repeats the CT: "
                "ask for the thin reconstructions to be sent too, or send anyway."
            )
        return found


_SHORT = frozenset({SeriesState.PARTIAL, SeriesState.MISSING})


def _refused_words(refused: RefusedImages) -> str:
    """What the refused images mean and what to do, without whom they named: the page is this
    study's patient's, and another patient's name does not belong on it."""
    n = refused.images
    if n == 1:
        said = "1 image that came for this study was refused because it carries"
        it, it_is = "it", "It is"
    else:
        said = f"{n} images that came for this study were refused because they carry"
        it, it_is = "they", "They are"
    sources = ", ".join(source for source in refused.sources if source)
    came_from = f" ({it} came from {sources})" if sources else ""
    return (
        f"{said} another patient's name, record number or birth date{came_from}. {it_is} not "
        "sent with this study. Ask radiology to check the study on the scanner or in the PACS; "
        f"once put right and sent to this agent again, {it} {'is' if n == 1 else 'are'} added "
        "here."
    )


def _state(received: int, in_pacs: PacsSeries | None, asked: bool) -> SeriesState:
    if not asked:
        return SeriesState.UNKNOWN
    if in_pacs is None:
        return SeriesState.NOT_IN_PACS
    if in_pacs.instances is None:
        return SeriesState.UNKNOWN
    if received >= in_pacs.instances:
        return SeriesState.COMPLETE
    return SeriesState.PARTIAL if received else SeriesState.MISSING


def _lacks_thin_slices(series: tuple[SeriesRecord, ...]) -> bool:
    ct = [s for s in series if s.modality == "CT"]
    return bool(ct) and not any(
        s.thinnest_slice_mm is not None and s.thinnest_slice_mm <= THIN_SLICE_MM for s in ct
    )


def assess(
    study: StudyRecord,
    pacs: Sequence[PacsSeries] | None,
    *,
    now: float,
    stable_after: float,
    pacs_problem: str = "",
) -> CompletenessReport:
    """Compare what arrived with what the PACS holds of the study (`pacs`: its SERIES-level
    answers; None when the PACS was not asked, `pacs_problem` then saying why). `now` and the
    study's arrival times are seconds since the epoch; `stable_after` is in seconds."""
    held = {p.series_instance_uid: p for p in pacs or ()}
    received = {s.series_instance_uid for s in study.series}
    # What arrived, then what only the PACS holds (none of it arrived).
    rows: list[tuple[SeriesRecord | PacsSeries, int]] = [(s, s.instances) for s in study.series]
    rows += [(p, 0) for uid, p in held.items() if uid not in received]
    checks = tuple(
        SeriesCheck(
            series_instance_uid=row.series_instance_uid,
            series_number=row.series_number,
            modality=row.modality,
            description=row.description,
            received=count,
            in_pacs=in_pacs.instances if in_pacs else None,
            state=_state(count, in_pacs, pacs is not None),
        )
        for row, count in rows
        for in_pacs in [held.get(row.series_instance_uid)]
    )
    return CompletenessReport(
        study_instance_uid=study.study_instance_uid,
        series=checks,
        compared_with_pacs=pacs is not None,
        seconds_since_last_image=study.seconds_since_last_image(now),
        stable_after=stable_after,
        no_thin_slices=_lacks_thin_slices(study.series),
        pacs_problem=pacs_problem,
        refused=study.refused,
    )
