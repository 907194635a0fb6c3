"""What the sending site's commands (`push`, `break-glass`, `reissue`, `revoke`, and the transfer
sheet `push` and `reissue` write) record in the site's own audit log,
`<state>/sending/console-audit.jsonl`, beside the ER console's records: the action names and
details the console records for the same buttons (`sending_site.console.transfer_pages`), by the
operating-system account, `where` local, `via` command line
(`site_agent.commands.audit_command`). Never a code, a key, a capability, the credential, nor
the break-glass reason (it may describe the patient)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from sending_site.cli import SENDER
from sending_site.errors import SendingError
from site_agent.audit import AuditLog
from site_agent.commands import audit_command
from site_agent.errors import AgentError, outcome_unknown
from site_agent.local_state import site_folder


def site_audit(state: Path) -> AuditLog:
    """The site's audit log in the state folder `state` (its folder made if missing;
    `StateFolderUnusable` if it cannot be)."""
    return AuditLog(site_folder(state, SENDER.folder), time.time)


@contextlib.contextmanager
def refusal_audited(log: AuditLog, action: str, transfer: str, **detail: object) -> Iterator[None]:
    """An action on `transfer` that the relay or this agent refuses is recorded too, as the
    console records it: `outcome` refused, or unknown when the request left and no answer came
    (`outcome_unknown`: the relay may have done it), `why` what stopped it (not its sentence,
    which may hold a code), and `detail` as its success records it; then the refusal goes on
    to be said."""
    try:
        yield
    except (SendingError, AgentError) as e:
        why = type(e).__name__
        outcome = "unknown" if outcome_unknown(e) else "refused"
        audit_command(log, action, outcome=outcome, transfer=transfer, why=why, **detail)
        raise


def break_glass_audited(log: AuditLog, transfer: str, clinician: str, *, already: bool) -> None:
    """Break-glass on `transfer`, added now or `already` there (`break-glass`, or `push
    --break-glass`), as the console records its button: the clinician who authorized (trimmed,
    as typed there), never the reason (it may describe the patient; it is sealed for the trauma
    center). A refusal is recorded as refused, as there (`refusal_audited`, or
    `break_glass_not_added` for the one `push` sends)."""
    audit_command(
        log, "break-glass", transfer=transfer, clinician=clinician.strip(), already=already
    )


def break_glass_not_added(
    log: AuditLog, transfer: str, clinician: str, *, outcome: str, why: str
) -> None:
    """Break-glass that `push --break-glass` sent on `transfer` and that was not added:
    `outcome` refused, or unknown when no answer came (it may have been added; the next push or
    `break-glass` of it records it then, `already`); `why` what stopped it, as
    `refusal_audited` records it. The clinician who tried, never the reason."""
    audit_command(
        log, "break-glass", outcome=outcome, transfer=transfer, why=why, clinician=clinician.strip()
    )
