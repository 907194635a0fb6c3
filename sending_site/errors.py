"""What the sending site agent refuses, in sentences the ER staff can act on."""

from __future__ import annotations

from typing import ClassVar, NamedTuple, Self

from transfer_codes.messages import from_docstring


class Said(NamedTuple):
    """One refusal in the two places it is said: the command line names the command or option
    to run again; the ER console names the button on its page."""

    cli: str
    console: str


class SendingError(Exception):
    """The study could not be sent."""

    # Definitive: trying the same again cannot cure it (it would stop here again, or send the
    # study as another transfer nobody chose), so the ER console offers no "Try again"; staff
    # do what its sentence says instead (send as a new transfer, tell the trauma center, choose
    # other images). False where trying again can work: the network, a file to put back, a
    # PACS or a relay out of reach or in trouble, a setting to fix.
    definitive: ClassVar[bool] = False

    def __init__(self, message: str | None = None, *, console: str | None = None) -> None:
        super().__init__(message or from_docstring(type(self)))
        self._console = console

    @property
    def message(self) -> str:
        return str(self.args[0])

    @classmethod
    def said(cls, words: Said) -> Self:
        return cls(words.cli, console=words.console)

    @property
    def for_console(self) -> str:
        """The same sentence as the ER console says it: where the command line names a command
        or an option to run again, the console names the button on its page."""
        return self._console or self.message


class NoDicomFound(SendingError):
    """No DICOM images were found in what you gave. Check the folder or disc and try again."""


class DamagedDicom(SendingError):
    """Some DICOM files are damaged (cut off or unreadable), so the study would arrive incomplete.
    Nothing was sent: copy the study again from the PACS or the disc, and try again."""


class ControlCharacterInValue(SendingError):
    """A value of these files (the patient's name, for one) holds a control character that
    DICOM does not allow in it. Nothing was sent: have it corrected where the study was made,
    export the study again and push that."""


class MixedPatients(SendingError):
    """These files belong to more than one patient. One transfer carries one patient: send each
    patient's images separately."""

    definitive = True


class UnsafeMedia(SendingError):
    """The DICOMDIR on this disc points outside the disc; it was not read."""

    definitive = True


class TransferJournalError(SendingError):
    """The local record of an earlier transfer is damaged."""


class FileChanged(SendingError):
    """A file changed while it was being sent; send the study again."""


class FileGone(SendingError):
    """A file was removed after it was read, before it was sent. Put it back and run the same
    command again: it resumes with the same code."""


class UploadInterrupted(SendingError):
    """The relay holds less of an image than it had acknowledged. Run the same command again:
    it resumes from what the relay holds."""


class TransferWithdrawn(SendingError):
    """The transfer could not be finished, so it was withdrawn: its code no longer works. Fix
    the problem and send the study again; it goes as a new transfer with a new code."""

    definitive = True


class TransferAbandoned(SendingError):
    """That transfer was given up (revoked, expired or replaced by a later one), so its code
    cannot be re-issued. Send the study again with trauma-relay push."""

    definitive = True


class AlreadyDelivered(SendingError):
    """This study was already delivered to that trauma center, so nothing was sent. If they ask
    for it again, run the same command with --replace."""

    definitive = True


class AlreadySent(SendingError):
    """A transfer of this study to that trauma center is already uploaded from other files, and
    its code still works, so nothing was sent. To send these files instead and stop that code,
    run the same command with --replace."""

    definitive = True


class NotReplaced(SendingError):
    """An earlier transfer that this one replaces could not be withdrawn. Run the same command
    again."""


class BreakGlassNotNeeded(SendingError):
    """The patient or family already authorized this transfer, so break-glass is not needed:
    the trauma center can redeem its code as it is."""

    definitive = True


class BreakGlassTooEarly(SendingError):
    """This transfer has no code yet (its push stopped before the code was shown). Run the same
    push command again with --break-glass."""


class BreakGlassTooLate(SendingError):
    """This transfer was already redeemed, delivered, revoked or locked, or it expired, so
    break-glass can no longer be added to it."""

    definitive = True


class BadSitePhone(SendingError):
    """That is not a phone number. Give the number the trauma center should call, e.g.
    --site-phone "+1 555 010 0199" (or set TRAUMA_RELAY_SITE_PHONE)."""

    definitive = True


class BreakGlassIncomplete(SendingError):
    """Break-glass needs a sentence saying why nobody can consent and the name of the clinician
    who authorizes: add --break-glass "REASON" --clinician NAME."""

    definitive = True


class OutputUnwritable(SendingError):
    """A file asked for (--qr, --sheet or --link-qr) cannot be written there. Check that its
    folder exists and this user can write it; nothing was sent."""


class TransferDeclined(SendingError):
    """The patient or their family said no on their phone, so the transfer was stopped and its
    code no longer works. The trauma center will not receive these images through trauma-relay:
    let them know."""

    definitive = True


class UnknownDestination(SendingError):
    """That is not a trauma center on this relay. Nothing was sent: trauma-relay destinations
    lists them."""

    definitive = True


class DisabledDestination(SendingError):
    """That trauma center is on this relay, but the relay's operator has disabled it. Nothing
    was sent: only the relay's operator can enable it again."""


class AmbiguousDestination(SendingError):
    """That could mean more than one trauma center. Give the name of the one you mean with
    --to. Nothing was sent."""

    definitive = True


class ConfirmationNeeded(SendingError):
    """push asks for confirmation before sending, and cannot ask here. Add --yes to send
    without asking (for scripts). Nothing was sent."""

    definitive = True


class NotConfirmed(SendingError):
    """Not confirmed. Nothing was sent."""


class AlreadyRedeemed(SendingError):
    """The trauma center has already redeemed this transfer, so it cannot be revoked. Call
    them if the images must not be used."""

    definitive = True


class PushArgumentsInvalid(SendingError):
    """Say what to send: files, folders or discs, or --from-inbox SPOOL with --study UID (the
    Study Instance UID of a study the DICOM inbox received), not both."""

    definitive = True


class ReportNotPdf(SendingError):
    """That file is not a PDF, so it cannot travel with the images as the report. Save the
    report as a PDF and add it again."""

    definitive = True


class ReportTooLarge(SendingError):
    """That PDF is too large to travel with the images. Save a smaller PDF of the report (fewer
    pictures, or lower resolution) and add it again."""

    definitive = True


class AgentAlreadyRunning(SendingError):
    """Another sending agent or ER console is already running with this state folder, and
    would send the same studies. Stop it first, or use that one."""
