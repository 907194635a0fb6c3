"""What a push is about to send, for staff to check before anything leaves the hospital: the
destination, the patient (name, birth date, ID), each study (description, date), the series
and image counts, and any damaged files left out. Pure: a `Collection` in, lines out."""

from __future__ import annotations

from sending_site.collect import Collection
from sending_site.destinations import Destination
from site_agent.dicom_text import UNKNOWN, date, person_name
from site_agent.terminal_text import shown

YES = frozenset({"y", "yes"})
MOST_OMITTED_SHOWN = 10


def describe(c: Collection, destination: Destination) -> list[str]:
    """The lines shown before the question, one fact each."""
    first = c.instances[0]
    issuer = f", issuer {first.issuer_of_patient_id}" if first.issuer_of_patient_id else ""
    studies = sorted({(i.study_date, i.study_description) for i in c.instances})
    series = len({i.series_instance_uid for i in c.instances})
    megabytes = sum(i.size for i in c.instances) / 1e6
    lines = [
        f"To:       {destination.label()}",
        f"Patient:  {person_name(first.patient_name)}, born {date(first.patient_birth_date)} "
        f"(ID {first.patient_id or UNKNOWN}{issuer})",
        *(
            f"Study:    {description.strip() or 'no description'}, {date(study_date)}"
            for study_date, description in studies
        ),
        f"Images:   {series} series, {len(c.instances)} images ({megabytes:.1f} MB)",
    ]
    if c.omitted:
        names = ", ".join(p.name for p, _ in c.omitted[:MOST_OMITTED_SHOWN])
        more = len(c.omitted) - MOST_OMITTED_SHOWN
        names += f" and {more} more" if more > 0 else ""
        lines.append(f"LEFT OUT: {len(c.omitted)} damaged file(s), not sent: {names}")
    return lines


def question(destination: Destination) -> str:
    return f"Send this study to {shown(destination.display_name or destination.name)}? [y/N] "


def confirmed(answer: str) -> bool:
    """Only "y" or "yes" (any case) sends; anything else, an empty line or Ctrl-D does not."""
    return answer.strip().casefold() in YES
