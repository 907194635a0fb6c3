"""The code-not-accepted answer that says how many tries are left (`relay.desk.receiving`
decides when it may be said)."""

from __future__ import annotations

from aiohttp import web

from relay import errors
from relay.api.problems import problem


def not_accepted(left: int) -> web.Response:
    """The code-not-accepted problem, with `attempts_left` and a sentence that says it."""
    if left == 0:
        detail = (
            "That code was not accepted, and that was the last try: the transfer is now "
            "locked. Call the sending hospital, which can issue a new code."
        )
    else:
        tries = "1 more try" if left == 1 else f"{left} more tries"
        detail = (
            "That code was not accepted. Check it against the transfer sheet; "
            f"{tries} before the transfer locks. If it still fails, call the sending "
            "hospital, which can issue a new code."
        )
    refusal = errors.CodeNotAccepted(detail)
    return problem(refusal.status, refusal.code, refusal.detail, attempts_left=left)
