"""What the holds queue's page says about each choice: a heading, what it does, the
confirmation a person ticks, the button. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from receiving_site import holds_queue
from receiving_site.hold_record import HeldStudy
from receiving_site.holds_queue import Choice

# Each choice's button, also how a page names the choice a click sent.
BUTTONS = {
    Choice.TRY_AGAIN: "Try again",
    Choice.CONFIRM_LOCAL_RECORD: "File under the PACS's record",
    Choice.NEW_LOCAL_PATIENT: "File under the new record",
    Choice.OTHER_RECORD: "File under this record",
    Choice.SAVE_TO_FOLDER: "Save to folder",
    Choice.STORE_ANYWAY: "Store anyway",
    Choice.DISCARD: "Discard",
}


@dataclass(frozen=True)
class Option:
    """A choice as the page offers it: a heading, what it does, the confirmation to tick."""

    choice: Choice
    title: str
    does: str
    confirm: str
    button: str


def hold_options(held: HeldStudy) -> list[Option]:
    mrn = held.local_patient_id or held.ours.patient_id
    left_in_pacs = ""
    if held.stored_in_pacs:
        left_in_pacs = (
            f" The {held.stored_in_pacs} images already stored in the PACS stay there: tell "
            "radiology the study there is incomplete, and ask the PACS administrators to "
            "remove them if they must not stay."
        )
    words = {
        Choice.TRY_AGAIN: Option(
            Choice.TRY_AGAIN,
            "Try the PACS again",
            "Once the PACS administrators have fixed what stopped it, store the study in the "
            f"PACS {held.pacs} as it was meant to be.",
            "The PACS administrators say it is fixed.",
            BUTTONS[Choice.TRY_AGAIN],
        ),
        Choice.CONFIRM_LOCAL_RECORD: Option(
            Choice.CONFIRM_LOCAL_RECORD,
            "It is the same patient: file under the PACS's record",
            f"File the images under patient ID {mrn}, taking the PACS's name and birth date "
            "(for example when the PACS has the patient under a trauma alias).",
            "I checked the patient in front of me: the PACS's record is this patient.",
            BUTTONS[Choice.CONFIRM_LOCAL_RECORD],
        ),
        Choice.NEW_LOCAL_PATIENT: Option(
            Choice.NEW_LOCAL_PATIENT,
            "The record number was just given to this patient",
            "File the images under this new record number, keeping the name and birth date "
            "the ER sent.",
            "This record number was just registered for this patient.",
            BUTTONS[Choice.NEW_LOCAL_PATIENT],
        ),
        Choice.OTHER_RECORD: Option(
            Choice.OTHER_RECORD,
            "File under this patient's own record number",
            "The images are filed under the number you give; the PACS's name and birth date "
            "for it must match the ER's patient, or the study is held again.",
            "This is the patient's own record number here.",
            BUTTONS[Choice.OTHER_RECORD],
        ),
        Choice.SAVE_TO_FOLDER: Option(
            Choice.SAVE_TO_FOLDER,
            "Save the images in a folder to look at first",
            "Nothing goes to the PACS, and the study stays in this queue for the PACS.",
            "Save a review copy; nothing goes to the PACS.",
            BUTTONS[Choice.SAVE_TO_FOLDER],
        ),
        Choice.STORE_ANYWAY: Option(
            Choice.STORE_ANYWAY,
            "Store in the PACS as they are",
            "Only after a person has reviewed this and decided the images belong in the PACS "
            "as they are: they are stored without this check.",
            "A person reviewed this hold and decided the images belong in the PACS as they are.",
            BUTTONS[Choice.STORE_ANYWAY],
        ),
        Choice.DISCARD: Option(
            Choice.DISCARD,
            "Discard the images",
            "Removes the images and the key from this machine. The transfer cannot be "
            "imported from here afterwards; the ER still has the study." + left_in_pacs,
            "Remove these images from this machine.",
            BUTTONS[Choice.DISCARD],
        ),
    }
    return [words[choice] for choice in holds_queue.choices(held)]
