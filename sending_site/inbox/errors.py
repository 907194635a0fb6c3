"""What the inbox (the agent's DICOM node and its PACS queries) refuses, in sentences that say
what to do next."""

from __future__ import annotations

from sending_site.errors import SendingError


class InboxError(SendingError):
    """The DICOM inbox could not do what was asked."""


class InboxSettingInvalid(InboxError):
    """A setting of the DICOM inbox is not valid. Correct it and start the agent again."""


class PortInUse(InboxError):
    """The DICOM port is already in use by another program. Stop that program or choose
    another port, and tell the PACS administrator the port you chose."""


class SpoolUnusable(InboxError):
    """The spool folder cannot be used. Check that it exists on a local disk with free space
    and that this agent may write there."""


class IndexTooNew(InboxError):
    """The spool was last used by a newer version of the agent. Update this agent, or give it
    another spool folder."""


class StudyNotSpooled(InboxError):
    """That study is not in the inbox. Send it to the agent from the PACS, or fetch it, and try
    again."""


class PacsUnreachable(InboxError):
    """The hospital PACS could not be reached or refused the connection. Check its AE title,
    address and port in the agent's settings, and that the PACS accepts this agent."""


class PacsRefused(InboxError):
    """The hospital PACS refused the request. Ask the PACS administrator to allow queries and
    retrieves from this agent's AE title."""


class QueryInvalid(InboxError):
    """Search by medical record number, by accession number, or by name and date of birth
    together."""

    definitive = True


class InstanceNotKept(InboxError):
    """It could not be added to the study in the inbox. Nothing was changed; check the study
    and try again."""
