"""Every error the transfer_codes package raises.

Each class docstring is the sentence an operator or nurse sees; ``str(error)`` returns it unless
the raiser supplied a more specific message (for example one naming the character position).
Errors about malformed input also subclass ``ValueError`` so generic callers that catch
``ValueError`` keep working; catch ``TransferCodeError`` to handle everything from this package.
"""

from __future__ import annotations

from transfer_codes.messages import from_docstring


class TransferCodeError(Exception):
    """Something went wrong with a transfer code, key or sealed data."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(from_docstring(type(self)) if message is None else message)

    @property
    def message(self) -> str:
        """The user-facing sentence."""
        return str(self.args[0])


# --- Redemption codes -------------------------------------------------------------------------


class CodeFormatError(TransferCodeError, ValueError):
    """This is not a valid transfer code. Check it and type it again."""


class CodeLengthError(CodeFormatError):
    """A transfer code has 16 characters. Check that none is missing or doubled."""

    def __init__(self, length: int) -> None:
        self.length = length
        hint = "a character is missing" if length < 16 else "there are extra characters"
        super().__init__(
            f"The code has {length} characters but a transfer code has 16: {hint}. "
            "Check the code and type it again. No attempt was used."
        )


class CodeCharacterError(CodeFormatError):
    """A character in the code is not used in transfer codes. Check the code and type it again."""

    def __init__(self, position: int, character: str = "") -> None:
        self.position = position
        self.character = character
        shown = f" ({character!r})" if character else ""
        super().__init__(
            f"Character {position}{shown} cannot appear in a transfer code. Codes use the digits "
            "0-9 and the letters A-Z except U. Check that character and type it again. "
            "No attempt was used."
        )


class CodeChecksumError(CodeFormatError):
    """This code has a typing mistake: a character is wrong or two are swapped. Read the code back
    group by group and type it again. No attempt was used."""


# --- QR capabilities --------------------------------------------------------------------------


class CapabilityFormatError(TransferCodeError, ValueError):
    """This QR code is not a trauma-relay transfer code. Scan the transfer QR on the transfer sheet,
    or type the 16-character code instead."""


class UnknownCapabilityVersion(CapabilityFormatError):
    """This transfer QR was made by a newer version of trauma-relay. Update this software, or type
    the 16-character code instead."""


class UnknownCapabilityField(CapabilityFormatError):
    """This transfer QR contains information this software does not understand. Update this
    software, or type the 16-character code instead."""


class CapabilityLengthError(CapabilityFormatError):
    """This transfer QR is damaged or incomplete. Scan it again, or type the 16-character code
    instead."""


# --- Keys -------------------------------------------------------------------------------------


class UnwrapError(TransferCodeError):
    """This code does not unlock this transfer. Check the code with the sending hospital."""


class KeyLockInvalid(TransferCodeError, ValueError):
    """The key record for this transfer is malformed. The relay or the sender sent bad data;
    contact support."""


# --- Sealed objects ---------------------------------------------------------------------------


class SealedObjectError(TransferCodeError):
    """An image in this transfer failed its integrity check and was not used. Download the
    transfer again; if it keeps failing, ask the sending hospital to resend."""


class HeaderCorrupt(SealedObjectError):
    """An image in this transfer is damaged (its header is unreadable) and was not used. Download
    the transfer again."""


class UnsupportedFormatVersion(SealedObjectError):
    """An image in this transfer was sealed with a newer format than this software understands.
    Update this software."""


class ChunkTooLarge(SealedObjectError):
    """An image in this transfer declares a chunk size above the allowed limit and was refused.
    The data did not come from a genuine sender; contact support."""


class ChunkAuthenticationFailed(SealedObjectError):
    """An image in this transfer was altered or damaged after it was sent and was not used.
    Download the transfer again; if it keeps failing, ask the sending hospital to resend."""


class ChunkReordered(SealedObjectError):
    """Parts of an image arrived out of order or with a part missing, so the image was not used.
    Download the transfer again."""


class ChunkRepeated(SealedObjectError):
    """Part of an image arrived twice, so the image was not used. Download the transfer again."""


class TruncatedObject(SealedObjectError):
    """An image in this transfer is incomplete (the download was cut short) and was not used.
    Download the transfer again."""


class MissingFinalChunk(SealedObjectError):
    """The end of an image is missing, so the image was not used. Download the transfer again."""


class TrailingData(SealedObjectError):
    """An image in this transfer has unexpected extra data after its end and was not used.
    Download the transfer again."""


class NonCanonicalObject(SealedObjectError):
    """An image in this transfer was sealed in a non-standard way and was not used. Ask the
    sending hospital to check their trauma-relay version."""


class ObjectMisplaced(SealedObjectError):
    """An image arrived in the place of another image of the same transfer and was not used.
    Download the transfer again."""


class ObjectFromAnotherTransfer(SealedObjectError):
    """An image belonging to a different transfer was delivered here and was not used. Download
    the transfer again; if it happens again, contact support."""


# --- Manifest ---------------------------------------------------------------------------------


class ManifestError(TransferCodeError):
    """The list of images in this transfer could not be checked. Download the transfer again."""


class ManifestAuthenticationFailed(ManifestError):
    """The list of images in this transfer was altered or damaged and was not used. Download the
    transfer again; if it keeps failing, contact support."""


class ManifestOutOfOrder(ManifestError):
    """Parts of the list of images arrived out of order. Download the transfer again."""


class ManifestAlreadyClosed(ManifestError):
    """More of the list of images arrived after it was complete, and was refused. Contact
    support."""


class ManifestEntryInvalid(ManifestError, ValueError):
    """The list of images in this transfer contains an invalid entry. Ask the sending hospital to
    check their trauma-relay version."""


class ManifestIncomplete(ManifestError):
    """The list of images in this transfer is not complete yet. Wait for the upload to finish."""


class ObjectMismatch(ManifestError):
    """An image does not match the list of images the sender made (wrong size or content) and was
    not used. Download the transfer again."""


class ObjectMissing(ManifestError):
    """Some images listed by the sender have not arrived. Wait for the upload to finish or
    download the transfer again."""

    def __init__(self, missing: frozenset[int] | set[int] | None = None) -> None:
        self.missing = frozenset(missing or ())
        message = None
        if self.missing:
            shown = ", ".join(str(i) for i in sorted(self.missing)[:10])
            more = " and more" if len(self.missing) > 10 else ""
            message = (
                f"{len(self.missing)} image(s) listed by the sender have not arrived "
                f"(numbers {shown}{more}). Wait for the upload to finish or download the "
                "transfer again."
            )
        super().__init__(message)


class UnexpectedObject(ManifestError):
    """An image arrived that is not on the sender's list of images and was not used."""
