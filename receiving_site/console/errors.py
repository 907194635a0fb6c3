"""What the trauma console tells staff when a step cannot go on: each class's docstring is the
sentence shown on the page (beside the form it is about), `status` the HTTP status."""

from __future__ import annotations

from site_agent.console.errors import ConsoleError


class NoPacs(ConsoleError, status=503, title="Not set up yet"):
    """No PACS is set for this agent (pacs.host in its configuration), so nothing can be
    imported yet. Ask the administrator to set it."""


class StillRedeeming(ConsoleError, status=202, title="Still working"):
    """The relay has not answered yet; the code is still being checked. This page lists the
    import as soon as it is redeemed."""


class MaybeOpenedByItsQr(ConsoleError, status=400):
    """If this transfer's QR was scanned here already, its import is in the list below: open it
    there, the code is not needed."""


class DifferencesNotTicked(ConsoleError, status=400):
    """Tick each difference once you have checked it against the patient in front of you.
    Nothing was imported."""


class RecordNumberChanged(ConsoleError, status=400):
    """Another record number was checked from this sign-in since this page was shown (in
    another tab or window): it is the one below now. Check it against the patient, then press
    Import into the PACS again. Nothing was imported."""


class PacsNotAsked(ConsoleError, status=400):
    """Nothing was stored, and the study stays on this machine. Press Check this record again
    in a moment; if the PACS still cannot be asked, call its administrator."""


class BeingCheckedAgain(ConsoleError, status=409):
    """This study is being checked again on its import page (someone pressed Check again
    there): it is filed from there, or held again. Nothing was done here; come back if it is
    held again."""


class ContinueFromTheList(ConsoleError):
    """Open it again from the trauma console's list of unfinished imports and press
    Continue."""


class ContinuingCannotHelp(ConsoleError, status=200):
    """Continuing cannot help: this import cannot be finished from this machine. If the study
    is still needed, ask the sending hospital to send it again with a new code."""


class NoWorklist(ConsoleError, status=200):
    """This console cannot look patients up on a worklist. Find the patient's record number
    (MRN) in this hospital's system and type it below."""


class WorklistPickStale(ConsoleError, status=409):
    """That patient is not in this import's last worklist search any more: search the worklist
    again and pick the patient from the new list. Nothing was imported."""


class NoSuchHold(ConsoleError, status=404, title="No such held study"):
    """No study is held here under this address, and none was resolved here under it: check
    the address, or find the study in the list of held studies. Nothing was done."""
