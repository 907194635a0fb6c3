"""Each person's record check of an import is their own (`record_checks`): pure, sessions and
times given."""

from __future__ import annotations

from receiving_site.console.identity_check import LocalCheck
from receiving_site.console.record_checks import Checked, RecordChecks, elsewhere
from site_agent.console.sessions import Session

AT = 1_796_000_000.0  # 2026-11-30 00:53 UTC
SHOWN = "2026-11-30 00:53 UTC"


def _session(sid: str, user: str) -> Session:
    return Session(id=sid, csrf_token=f"csrf-{sid}", user=user, started=AT, last_seen=AT)


def _checked(mrn: str, who: str, issuer: str = "COUNTY") -> Checked:
    return Checked(LocalCheck(mrn, issuer, None, ()), who, AT)


def test_each_session_keeps_its_own_check_and_sees_the_others_of_another_record() -> None:
    checks = RecordChecks()
    kim, lee, kim_too = _session("a", "kim"), _session("b", "lee"), _session("c", "kim")
    checks.keep("T", kim, _checked("MRN-555", "kim"))
    checks.keep("T", lee, _checked("MRN-556", "lee"))
    checks.keep("T", kim_too, _checked("MRN-555", "kim"))  # the same record: no disagreement
    mine = checks.mine("T", kim)
    assert mine is not None
    assert mine.local_patient_id == "MRN-555"
    assert [c.who for c in checks.others("T", kim)] == ["lee"]
    assert [c.record for c in checks.others("T", lee)] == [("MRN-555", "COUNTY")] * 2
    assert checks.mine("U", kim) is None
    checks.drop("T", lee)
    assert checks.others("T", kim) == []
    checks.forget("T")
    assert checks.mine("T", kim) is None


def test_the_oldest_checks_go_first_past_the_limit() -> None:
    checks = RecordChecks(max_per_import=2)
    sessions = [_session(str(n), f"user{n}") for n in range(3)]
    for n, session in enumerate(sessions):
        checks.keep("T", session, _checked(f"MRN-{n}", f"user{n}"))
    assert [checks.mine("T", s) is not None for s in sessions] == [False, True, True]


def test_others_checks_are_named_with_who_which_record_and_when() -> None:
    assert elsewhere([]) == ""
    assert elsewhere([_checked("MRN-556", "lee"), _checked("MRN-9", "kim", issuer="")]) == (
        f"Checked on another page, not imported yet: lee checked record MRN-556 (issuer COUNTY) "
        f"on {SHOWN}; kim checked record MRN-9 on {SHOWN}. Only one record is used: the first "
        "Import into the PACS pressed decides. Agree on this patient's record with them before "
        "you press it."
    )
