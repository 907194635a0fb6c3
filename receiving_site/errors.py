"""What the receiving site agent refuses, in sentences trauma-center staff can act on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from transfer_codes.messages import from_docstring
from transfer_codes.wire import Problem

if TYPE_CHECKING:
    from receiving_site.holds import Hold


class ReceivingError(Exception):
    """The study could not be received."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or from_docstring(type(self)))

    @property
    def message(self) -> str:
        return str(self.args[0])


class VerificationFailed(ReceivingError):
    """The study failed verification: an image was altered, swapped or is missing. Nothing was
    stored in the PACS. Call the sending hospital."""


class ImageTooLarge(VerificationFailed):
    """An image inflates to more than any image should; nothing was stored."""


class IdentityMismatch(ReceivingError):
    """The images do not all belong to the patient named in the transfer. Nothing was stored;
    a person must review this transfer."""


class PacsRefused(ReceivingError):
    """The PACS refused the images."""


class Undecodable(ReceivingError):
    """An image could not be decompressed (no decoder for its format, or damaged data), so it
    cannot go to a PACS that refuses that format. Its message is the decoder's reason."""


class PacsUnreachable(ReceivingError):
    """The PACS could not be reached or refused the connection."""


class BadPacsAddress(PacsUnreachable):
    """That is not a PACS address; write it as AET@HOST:PORT, e.g. PACS@10.0.0.5:104."""


class StowUnreachable(PacsUnreachable):
    """The DICOMweb server could not be reached or refused this system's credential; nothing
    was stored."""


class BadStowAddress(StowUnreachable):
    """--stow takes the DICOMweb base URL, e.g. https://pacs.hospital.local/dicom-web, with
    no user name, password or query in it (a credential goes in --stow-credential-file).
    Nothing was done."""


class FolderUnusable(ReceivingError):
    """The study cannot be written into that folder."""


class UploadUnfinished(ReceivingError):
    """The sending hospital has not finished uploading yet; run the same command again later to
    continue where this one stopped."""


class CannotContinue(ReceivingError):
    """This transfer cannot be continued from this machine: continuing (`--resume`, the trauma
    console's Continue) would stop here again. Its subclasses say why."""


class NothingKept(CannotContinue):
    """This machine keeps nothing of that transfer: it was not redeemed here, or it was
    delivered or discarded from here since."""


# The relay's refusals of a transfer that is gone for good: its images are deleted or withdrawn.
GONE_AT_THE_RELAY = frozenset({Problem.EXPIRED, Problem.REVOKED, Problem.NOT_FOUND})


class TransferGone(CannotContinue):
    """The relay no longer has this transfer (it expired, or was withdrawn), so the rest of its
    images cannot be downloaded. Ask the sending hospital to send the study again with a new
    code."""


class StudyIncomplete(CannotContinue):
    """The sending hospital stopped sending this study before all of it had arrived, so it is
    incomplete. Nothing was stored. Call the sending hospital: they can send the whole study
    again with a new code."""


class NoSecretGiven(ReceivingError):
    """No code was given. Type the code from the transfer sheet, or scan its QR."""


class AuthorizationLinkGiven(NoSecretGiven):
    """That is the patient's authorization link (the QR the family scans with their own phone
    to agree to the transfer), not the transfer's code. Nothing was sent and no attempt was
    used. Scan the QR beside the code on the transfer sheet or on the family's phone, or type
    the code."""


class WebAddressGiven(NoSecretGiven):
    """That is a web address, not a transfer code or a transfer QR. Nothing was sent and no
    attempt was used. Scan the QR beside the code on the transfer sheet or on the family's
    phone, or type the code."""


class ScannedGarbled(NoSecretGiven):
    """That is too long for a transfer code and is not a transfer QR as this computer reads it:
    if it was scanned, the scanner types with another keyboard layout than this computer's,
    which garbles it (a QR's ':' comes out as another character). Nothing was sent and no
    attempt was used. Type the 16-character code instead, and ask IT to set the scanner to this
    computer's keyboard layout."""


class IdentityHeld(ReceivingError):
    """The PACS already has this patient ID or this study under a different patient, or could
    not be asked; the study was held for review and nothing was stored."""

    def __init__(self, message: str | None = None, hold: Hold | None = None) -> None:
        super().__init__(message)
        self.hold = hold  # what held it, for the message with both sides and what to do


class IdentityNotChecked(IdentityHeld):
    """The PACS could not be asked about this patient (out of reach, or it refused the query);
    the study was held for review and nothing was stored. Asking again may work once it
    answers, unlike the other holds."""


class LocalIdUnusable(IdentityHeld):
    """The local patient ID (or its issuer) is not one a PACS can hold; nothing was stored."""


class LocalIdInOtherCase(IdentityHeld):
    """The PACS has no images for that local patient ID, but has the same letters in other
    case: check the number's letters and type it as this hospital writes it. Nothing was
    stored."""


class QueriesRefused(ReceivingError):
    """The PACS does not answer queries (C-FIND) from this system, so the patient's identity
    cannot be checked before storing. Ask the PACS administrators to allow C-FIND from this
    system's AE title."""


class LocalPatientNeedsPacs(ReceivingError):
    """--local-patient-id files the study under a PACS record, so it goes with --pacs, not
    --out. Nothing was done."""


class NotConfirmed(ReceivingError):
    """Nothing was stored: the study was not confirmed."""


class ConfirmationNeeded(ReceivingError):
    """redeem shows the study and asks you to confirm it before anything is stored, but there
    is no terminal here to ask at. Run it at a terminal, or add --yes to store without asking
    (for scripts). Nothing was done."""


class NoCodeEntered(ReceivingError):
    """No code was entered; nothing was done."""


class WorklistError(ReceivingError):
    """The worklist could not be asked. Type the local medical record number instead."""


class WorklistNotConfigured(WorklistError):
    """No worklist is set up for this console (worklist.host is empty). Type the local medical
    record number instead."""


class WorklistUnreachable(WorklistError):
    """The worklist could not be reached. Check that it is running and the worklist settings,
    or type the local medical record number."""


class WorklistRefused(WorklistError):
    """The worklist refused the query. Type the local medical record number instead."""


class WorklistTooVague(WorklistError):
    """Too many patients on the worklist match. Add the birth date or more of the name."""


class HoldNotFound(ReceivingError):
    """That study is no longer held on this machine: someone has resolved it already. Nothing
    was done."""


class HoldChoiceRefused(ReceivingError):
    """That choice does not resolve this hold. Nothing was done; pick one of the choices shown."""


class HeldAgain(IdentityHeld):
    """The study is held again for review; nothing was stored."""
