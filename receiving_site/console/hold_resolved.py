"""What the holds queue says of a study that is no longer held here, to a decision posted from a
page left open (another tab, another machine) after someone else resolved it: what became of
it, by whom and when, as far as this machine kept it (`hold_record.Resolved`, or the delivery
record `state.Delivery`), and that the click changed nothing. Pure: the POST redirects to the
study's page, which says what became of it to anyone, and what the click did once, to the
person who posted (`Clicked`, a notice kept in their session, `site_agent.console.notices`)."""

from __future__ import annotations

from dataclasses import dataclass

from receiving_site.console.hold_options import BUTTONS
from receiving_site.hold_record import Resolved
from receiving_site.holds_queue import Choice
from receiving_site.state import Delivery
from site_agent.dicom_text import how_many_images
from site_agent.local_time import utc_time

# What a person did, said after their name.
DID = {
    Choice.TRY_AGAIN: "stored it in the PACS, trying the PACS again",
    Choice.CONFIRM_LOCAL_RECORD: "filed it under the PACS's record",
    Choice.NEW_LOCAL_PATIENT: "filed it under a record number just given to this patient",
    Choice.OTHER_RECORD: "filed it under the patient's own record number",
    Choice.STORE_ANYWAY: "stored it in the PACS as it was",
    Choice.DISCARD: "discarded it from this machine",
}
SOMEONE = (
    "Someone else resolved it first, from another page or at the command line; the list of "
    "held studies shows what is still held."
)


@dataclass(frozen=True)
class Clicked:
    """The notice a POST that found the study no longer held leaves for its page: the choice
    it carried (None: a worklist search), and `was_held` when the decision itself found it
    resolved meanwhile (its failure recorded by `holds_queue.decide`), so that the page says
    what became of it even when this machine kept neither who decided nor a delivery."""

    choice: Choice | None = None
    was_held: bool = False


def what_became_of_it(resolved: Resolved | None, delivered: Delivery | None) -> str:
    """One or two sentences on what ended the hold; `SOMEONE` when this machine kept neither
    who decided nor a delivery."""
    if resolved is not None:
        try:
            did = DID[Choice(resolved.action)]
        except (ValueError, KeyError):
            did = "resolved it"
        images = how_many_images(resolved.instances)
        stored = f" {images} went to the PACS." if resolved.instances else ""
        return f"{resolved.who} {did} on {utc_time(resolved.at)}, in the holds queue.{stored}"
    if delivered is not None:
        return (
            f"It was delivered from this machine on {utc_time(delivered.at)}: "
            f"{how_many_images(delivered.instances)} to {delivered.destination}."
        )
    return SOMEONE


def nothing_changed(clicked: Choice | None) -> str:
    """What the click that found it resolved did: nothing."""
    if clicked is None:
        return "Nothing was changed: this study is no longer held here."
    return f"Your click on {BUTTONS[clicked]} changed nothing: this study is no longer held here."
