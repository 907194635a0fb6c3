"""`receiving_site.redeem.can_continue`: which stops continuing (`--resume`, the trauma
console's Continue) can get past, decided by the error's type (and, for the relay's refusals,
its problem type)."""

from __future__ import annotations

import errno

import pytest

from receiving_site import errors
from receiving_site.redeem import _to_resume, can_continue
from site_agent.errors import RelayRefused, RelayUnreachable
from transfer_codes.wire import Problem


def _refused(status: int, problem: Problem) -> RelayRefused:
    return RelayRefused(status, problem.value, "refused", {})


@pytest.mark.parametrize(
    "error",
    [
        errors.StudyIncomplete(),  # the ER stopped sending: it will never be whole
        errors.NothingKept(),  # its key is gone from this machine
        _refused(410, Problem.EXPIRED),
        _refused(410, Problem.REVOKED),
        _refused(404, Problem.NOT_FOUND),  # the relay's answer once it has expired
    ],
)
def test_a_transfer_that_is_over_cannot_be_continued(error: Exception) -> None:
    assert not can_continue(error)


@pytest.mark.parametrize(
    "error",
    [
        errors.PacsUnreachable(),
        errors.PacsRefused(),
        errors.QueriesRefused(),
        errors.VerificationFailed(),  # downloaded again
        errors.UploadUnfinished(),
        errors.ReceivingError("This machine could not keep the study (disk full)."),
        RelayUnreachable(),
        _refused(503, Problem.STORAGE_UNAVAILABLE),
        _refused(403, Problem.SITE_DISABLED),  # until the relay's operator enables it again
        RelayRefused(404, "", "Not Found", {}),  # not the relay's own answer: a proxy's
        OSError(errno.ENOSPC, "No space left on device"),
    ],
)
def test_a_stop_that_can_be_cured_can_be_continued(error: Exception) -> None:
    assert can_continue(error)


def test_how_to_continue_keeps_the_consoles_own_words() -> None:
    """The relay lost midway, in a console's import: the sentence staff read keeps the
    console's words ("try again"), not the command line's ("run the same command again"), with
    how to continue after it; and the reason stays."""
    lost = RelayUnreachable(
        "The relay could not be reached: x. Run the same command again.",
        "connection refused",
        console="The relay could not be reached: x. Try again.",
    )
    how = "Open it again from the list and press Continue."
    continued = _to_resume(lost, how)
    assert isinstance(continued, RelayUnreachable)
    assert continued.reason == "connection refused"
    assert "command" not in continued.for_console
    assert continued.for_console.startswith("The relay could not be reached: x. Try again.")
    assert continued.for_console.endswith(how)
