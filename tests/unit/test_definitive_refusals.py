"""Which refusals trying again cannot cure (`definitive`), so the ER console offers no "Try
again" for them: decided by the error's class, and for the relay's refusals by its problem code,
never by the sentence."""

from __future__ import annotations

import pytest

from sending_site import errors
from sending_site.inbox.errors import PacsRefused, PacsUnreachable, QueryInvalid
from site_agent.errors import (
    AgentError,
    CredentialMissing,
    CredentialUnreadable,
    RelayRefused,
    RelayUnreachable,
)
from transfer_codes.wire import Problem


def _relay(status: int, code: str) -> RelayRefused:
    return RelayRefused(status, code, "Whatever the relay said.", {})


DEFINITIVE: list[AgentError | errors.SendingError] = [
    errors.TransferDeclined(),  # the family said no on their phone
    errors.TransferWithdrawn(),
    errors.AlreadyDelivered(),  # "Send as a new transfer" instead
    errors.AlreadySent(),
    errors.MixedPatients(),
    errors.UnknownDestination(),
    QueryInvalid(),
    _relay(413, Problem.TOO_LARGE),
    _relay(400, Problem.BAD_REQUEST),
    _relay(410, Problem.REVOKED),
    _relay(409, Problem.ALREADY_REDEEMED),
]
CURABLE: list[AgentError | errors.SendingError] = [
    RelayUnreachable(),
    _relay(503, Problem.STORAGE_UNAVAILABLE),
    _relay(507, Problem.STORAGE_FULL),
    _relay(429, Problem.THROTTLED),
    _relay(429, Problem.SITE_LIMIT),  # once other transfers are delivered or expire
    _relay(409, Problem.INVALID_STATE),  # "too many open transfers; try again later"
    _relay(401, Problem.NOT_AUTHENTICATED),  # a credential to fix
    _relay(403, Problem.SITE_DISABLED),  # until the relay's operator enables the site
    _relay(404, Problem.UNKNOWN_SITE),  # said of a trauma center disabled for a while too
    _relay(500, Problem.RELAY_ERROR),
    _relay(413, ""),  # a proxy in front of the relay, with a body limit of its own
    CredentialMissing(),
    CredentialUnreadable(),
    PacsUnreachable(),
    PacsRefused(),
    errors.FileGone(),
    errors.FileChanged(),
    errors.UploadInterrupted(),
    errors.NotReplaced(),
    errors.NoDicomFound(),
    errors.SendingError("Internal error: the push ended without a code."),
]


@pytest.mark.parametrize("error", DEFINITIVE, ids=repr)
def test_trying_again_cannot_cure(error: AgentError | errors.SendingError) -> None:
    assert error.definitive


@pytest.mark.parametrize("error", CURABLE, ids=repr)
def test_trying_again_can_work(error: AgentError | errors.SendingError) -> None:
    assert not error.definitive


def test_the_relay_refusal_is_told_by_its_code_not_its_sentence() -> None:
    said = "This transfer is no longer on the relay."
    assert RelayRefused(404, Problem.NOT_FOUND, said, {}).definitive
    assert not RelayRefused(404, "", said, {}).definitive  # the same words from elsewhere
