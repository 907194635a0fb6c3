"""Each person's record check on an import's page, kept until the import is confirmed: by console
session, so that a person's Import into the PACS confirms the record that person checked, with
the differences that person was shown and ticked.

Why per session, not one check per import: the Import form's ticks acknowledge the differences
of the comparison on that person's page. One check per import, replaced by whoever checked last
(another registrar, on another machine), would either refuse the Import without saying who
changed what ("record number changed"), or, the same number checked with another issuer from
the worklist, apply the ticks to a comparison the person never saw. Two people deciding the
patient's record at once stays safe without it: confirmations go one at a time
(`appkeys.CONFIRMING`), the first ends the preview for everyone, and the other's Import is
then refused and told who confirmed which record, when, and what to do if that is wrong
(`stale_step`). Before either confirms, each page names the others' checks of another record
(`elsewhere`), so that a disagreement is seen before the Import, not only after it.

Pure: the time and the session are passed in. Keyed by a digest of the session id, never the
secret itself."""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from dataclasses import dataclass

from receiving_site.console.identity_check import LocalCheck
from site_agent.console.sessions import Session
from site_agent.local_time import utc_time

MAX_PER_IMPORT = 20  # people's checks kept for one import; then the oldest go first


@dataclass(frozen=True)
class Checked:
    """A record check that went ahead: what the PACS answered (`check`), who checked, and when
    (seconds since the epoch)."""

    check: LocalCheck
    who: str
    at: float

    @property
    def record(self) -> tuple[str, str]:
        return self.check.local_patient_id, self.check.issuer


def _key(session: Session) -> bytes:
    return hashlib.sha256(session.id.encode("utf-8", "surrogatepass")).digest()


class RecordChecks:
    """The record checks of imports at their preview, by transfer id, then by session."""

    def __init__(self, max_per_import: int = MAX_PER_IMPORT) -> None:
        self.max_per_import = max_per_import
        self._checks: dict[str, OrderedDict[bytes, Checked]] = {}

    def _of(self, transfer_id: str) -> dict[bytes, Checked]:
        return self._checks.get(transfer_id) or {}

    def mine(self, transfer_id: str, session: Session) -> LocalCheck | None:
        """The record check `session` made last on `transfer_id`'s page, if it is kept."""
        kept = self._of(transfer_id).get(_key(session))
        return None if kept is None else kept.check

    def keep(self, transfer_id: str, session: Session, checked: Checked) -> None:
        """`session`'s check of `transfer_id`, replacing its earlier one only."""
        checks = self._checks.setdefault(transfer_id, OrderedDict())
        checks.pop(_key(session), None)
        checks[_key(session)] = checked
        while len(checks) > self.max_per_import:
            checks.popitem(last=False)

    def drop(self, transfer_id: str, session: Session) -> None:
        """Forget `session`'s check (its last check could not be used)."""
        checks = self._checks.get(transfer_id)
        if checks is not None:
            checks.pop(_key(session), None)
            if not checks:
                del self._checks[transfer_id]

    def forget(self, transfer_id: str) -> None:
        """Forget every check of `transfer_id` (it was confirmed)."""
        self._checks.pop(transfer_id, None)

    def others(self, transfer_id: str, session: Session) -> list[Checked]:
        """The other sessions' checks of `transfer_id` of another record than `session`'s own
        (all of them when it has none), the oldest first."""
        checks, mine = self._of(transfer_id), _key(session)
        own = checks.get(mine)
        return [
            c
            for key, c in checks.items()
            if not hmac.compare_digest(key, mine) and (own is None or c.record != own.record)
        ]


def elsewhere(others: list[Checked]) -> str:
    """What an import's page says of other people's checks of another record: who checked
    which record when, that the first Import pressed decides, and to agree first. Empty when
    there are none."""
    if not others:
        return ""
    named = "; ".join(
        f"{c.who} checked record {c.check.local_patient_id}"
        + (f" (issuer {c.check.issuer})" if c.check.issuer else "")
        + f" on {utc_time(c.at)}"
        for c in others
    )
    return (
        f"Checked on another page, not imported yet: {named}. Only one record is used: the "
        "first Import into the PACS pressed decides. Agree on this patient's record with them "
        "before you press it."
    )
