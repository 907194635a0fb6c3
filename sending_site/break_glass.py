"""Break-glass on a transfer already sent (`trauma-relay break-glass`): a clinician authorizes
because nobody can consent, with the same code and nothing uploaded again, so the sheet that
went with the patient still works. Whether it may be added is the plan's rule
(`plan.break_glass_steps`); `push --break-glass` follows the same rule while it sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sending_site import journal
from sending_site.decisions import AddBreakGlass, Fail
from sending_site.plan import break_glass_steps
from sending_site.push import break_glass, seen_by_relay
from site_agent.client import RelayClient, RelayUnreachable
from transfer_codes.codes import RedemptionCode


def problem_with(reason: str | None, clinician: str | None) -> str | None:
    """What is wrong with a break-glass reason and clinician (as `push` and `break-glass`
    take them), in a sentence; None when they will do."""
    if reason is None:
        if clinician is not None:
            return "--clinician is only used with --break-glass."
        return None
    reason = reason.strip()
    if len(reason) < 15 or len(reason.split()) < 3:
        return (
            "a break-glass reason must be a sentence saying why nobody can consent, "
            'e.g. "Unconscious after a fall, no family reachable."'
        )
    if not (clinician or "").strip():
        return "break-glass needs the name of the clinician who authorizes: add --clinician NAME."
    return None


@dataclass(frozen=True)
class BreakGlassAdded:
    transfer_id: str
    # Grouped: the code already given out, unchanged. None when a re-issue's answer never came
    # (`TransferJournal.code_confirmed`): the relay may not hold it, so it is not shown.
    code: str | None
    recipient_display_name: str
    already: bool  # break-glass had been added before; nothing changed


async def add_break_glass(
    state_dir: Path,
    transfer_id: str,
    relay: str | None,
    credential: str,
    reason: str,
    clinician: str,
) -> BreakGlassAdded:
    """Authorize `transfer_id` (sent from this machine) by break-glass. Raises the plan's
    refusal: given up, already authorized by the patient or family, too early, too late;
    `RelayUnreachable` `unsent` when the status read first got no answer (nothing was asked)."""
    record = journal.load(state_dir, transfer_id)
    async with RelayClient(relay or record.relay, credential) as client:
        try:
            seen = await seen_by_relay(client, record.transfer_id)
        except RelayUnreachable as e:  # nothing asked yet: refused, not unknown, when audited
            raise e.before_asking() from e
        steps = break_glass_steps(record, seen, reason, clinician)
        for step in steps:
            if isinstance(step, Fail):
                raise step.error from step.cause
            if isinstance(step, AddBreakGlass):
                await break_glass(client, step.record, step.reason, step.clinician)
    return BreakGlassAdded(
        transfer_id=record.transfer_id,
        code=RedemptionCode.parse(record.code).grouped() if record.code_confirmed else None,
        recipient_display_name=(seen.recipient_display_name if seen else "") or record.recipient,
        already=not steps,
    )
