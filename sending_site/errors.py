"""What the sending site agent refuses, in sentences the ER staff can act on."""

from __future__ import annotations

from transfer_codes.messages import from_docstring


class SendingError(Exception):
    """The study could not be sent."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or from_docstring(type(self)))

    @property
    def message(self) -> str:
        return str(self.args[0])


class NoDicomFound(SendingError):
    """No DICOM images were found in what you gave. Check the folder or disc and try again."""


class DamagedDicom(SendingError):
    """Some DICOM files are damaged (cut off or unreadable), so the study would arrive incomplete.
    Nothing was sent: copy the study again from the PACS or the disc, and try again."""


class MixedPatients(SendingError):
    """These files belong to more than one patient. One transfer carries one patient: send each
    patient's images separately."""


class UnsafeMedia(SendingError):
    """The DICOMDIR on this disc points outside the disc; it was not read."""


class TransferJournalError(SendingError):
    """The local record of an earlier transfer is damaged."""


class FileChanged(SendingError):
    """A file changed while it was being sent; send the study again."""


class UploadInterrupted(SendingError):
    """The relay holds less of an image than it had acknowledged. Run the same command again:
    it resumes from what the relay holds."""


class TransferWithdrawn(SendingError):
    """The transfer could not be finished, so it was withdrawn: its code no longer works. Fix
    the problem and send the study again; it goes as a new transfer with a new code."""


class TransferAbandoned(SendingError):
    """That transfer was given up (revoked, expired or replaced by a later one), so its code
    cannot be re-issued. Send the study again with trauma-relay push."""


class UnknownDestination(SendingError):
    """That is not a trauma center on this relay. Nothing was sent: trauma-relay destinations
    lists them."""


class AmbiguousDestination(SendingError):
    """That could mean more than one trauma center. Give the name of the one you mean with
    --to. Nothing was sent."""


class ConfirmationNeeded(SendingError):
    """push asks for confirmation before sending, and cannot ask here. Add --yes to send
    without asking (for scripts). Nothing was sent."""


class NotConfirmed(SendingError):
    """Not confirmed. Nothing was sent."""


class OutputFolderMissing(SendingError):
    """The folder for an output file does not exist. Nothing was sent: give a folder that
    exists."""


class AlreadyRedeemed(SendingError):
    """The trauma center has already redeemed this transfer, so it cannot be revoked. Call
    them if the images must not be used."""
