"""The study preview staff read before the images go into the PACS: who the patient is, what the
study is, who sent it and how it was authorized. Pure: a verified `StudySummary` in, lines out.
"""

from __future__ import annotations

from site_agent.dicom_text import UNKNOWN, date, how_many_images, person_name
from site_agent.terminal_text import shown
from transfer_codes.manifest import SeriesSummary, StudySummary

__all__ = ["date", "describe", "incomplete", "person_name"]

_SEX = {"F": "female", "M": "male", "O": "other"}


def incomplete(summary: StudySummary) -> str | None:
    """The warning when the ER left damaged files out ("INCOMPLETE: 2 files were left out at
    the ER: IM0003, IM0007."), or None when nothing was left out."""
    count = max(summary.omitted_count, len(summary.omitted))
    if not count:
        return None
    names = ", ".join(summary.omitted)
    more = count - len(summary.omitted)
    if names and more:
        names += f" and {more} more"
    listing = f": {names}" if names else ""
    files = "1 file was" if count == 1 else f"{count} files were"
    return f"INCOMPLETE: {files} left out at the ER (damaged){listing}."


def time(tm: str) -> str:
    """A DICOM time "031500.123" as "03:15"; anything else as given, empty when not given."""
    tm = tm.strip()
    if len(tm) >= 4 and tm[:4].isdigit():
        return f"{tm[:2]}:{tm[2:4]}"
    return tm


def sex_word(cs: str) -> str:
    """A DICOM Patient's Sex "F" as "female"; anything else as given."""
    return _SEX.get(cs.strip().upper(), cs.strip() or UNKNOWN)


def series_line(series: SeriesSummary) -> str:
    """One series: "AXIAL 1MM, CT, 240 images, 1 mm slices"."""
    parts = [series.description or "no description", series.modality or "modality not given"]
    parts.append(how_many_images(series.image_count))
    if series.slice_thickness:
        parts.append(f"{series.slice_thickness} mm slices")
    return ", ".join(parts)


def describe(summary: StudySummary, sender: str = "", break_glass: bool = False) -> list[str]:
    """The preview, a line each: patient, study (with its time), every series, sender
    (`sender` is its display name as the relay knows it; break-glass marked), and what to do."""
    issuer = f", issuer {summary.issuer_of_patient_id}" if summary.issuer_of_patient_id else ""
    sex = _SEX.get(summary.patient_sex.strip().upper(), summary.patient_sex.strip() or UNKNOWN)
    study = summary.study_description.strip() or "no description"
    modalities = "/".join(summary.modalities) or "modality not given"
    images = f"{summary.instance_count} images" if summary.instance_count else "images"
    series = f"{summary.series_count} series, " if summary.series_count else ""
    accession = f", accession {summary.accession_number}" if summary.accession_number else ""
    when = " ".join(p for p in (date(summary.study_date), time(summary.study_time)) if p)
    listed = [
        f"{'Series:' if n == 0 else '':<10}{series_line(s)}" for n, s in enumerate(summary.series)
    ]
    if summary.series and summary.series_count > len(summary.series):
        listed.append(f"{'':<10}and {summary.series_count - len(summary.series)} more series")
    if not summary.instance_count:
        # A study the ER sent while it was still arriving (cut-through) is summed up before
        # it is whole; the closing record alone says how many images it has.
        listed.append(
            "Images:   the ER started sending while the study was still arriving; the images "
            "are counted once all have come."
        )
    named = summary.sending_site.strip()  # the sender's own name for itself, sealed
    both = sender and named and sender != named
    site = shown(f"{sender} ({named})" if both else sender or named) or UNKNOWN
    authorized = (
        "BREAK-GLASS: authorized by a clinician, not by the patient or family"
        if summary.break_glass or break_glass
        else "authorized by the patient or family"
    )
    warning = incomplete(summary)
    return [
        f"Patient:  {person_name(summary.patient_name)}, born {date(summary.patient_birth_date)}"
        f", {sex} (ER patient ID {summary.patient_id or UNKNOWN}{issuer})",
        f"Study:    {study}, {modalities}, {when}{accession} ({series}{images})",
        *listed,
        f"Sent by:  {site}; {authorized}",
        *([warning] if warning else []),
        "Check this against the patient in front of you.",
    ]
