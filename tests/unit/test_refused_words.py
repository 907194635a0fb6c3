"""What the ER is told when the patient or family said no on their phone (`sending_site.refused`):
who, when, that the trauma center will not get the images this way, and what to do next."""

from __future__ import annotations

import re
from typing import Any

import pytest

from sending_site import refused

AT = 1_800_000_000.0
LOCAL_TIME = re.compile(r"\(\d{4}-\d{2}-\d{2} \d{2}:\d{2} \S+\)")


def _status(state: str, revoked_by: str | None, *, declined: bool = False) -> dict[str, Any]:
    return {
        "state": state,
        "revoked_by": revoked_by,
        "declined": declined,
        "revoked_at": AT if revoked_by else None,
    }


@pytest.mark.parametrize(
    ("status", "by_patient", "reason"),
    [
        (
            _status("revoked", "family", declined=True),
            True,
            "the patient's family declined to share it on their phone",
        ),
        (
            _status("revoked", "patient", declined=True),
            True,
            "the patient declined to share it on their phone",
        ),
        (_status("revoked", "family"), True, "the patient's family cancelled it on their phone"),
        (_status("revoked", "sending_site"), False, "it was revoked"),
        (_status("revoked", None), False, "it was revoked"),  # revoked before the relay said who
        (_status("authorized", None), False, "it was revoked"),
    ],
    ids=["family-declined", "patient-declined", "family-cancelled", "sender", "unknown", "live"],
)
def test_who_said_no(status: dict[str, Any], by_patient: bool, reason: str) -> None:
    assert refused.by_patient(status) is by_patient
    if status["state"] == "revoked":
        assert refused.reason(status) == reason


def test_push_says_the_family_declined_and_what_to_do() -> None:
    said = refused.for_push(_status("revoked", "family", declined=True), "T" * 24, "AAAA-BBBB")
    text = said.cli
    assert text.startswith("The patient's family declined on their phone (")
    assert LOCAL_TIME.search(text)
    assert f"to share the images of transfer {'T' * 24}" in text
    assert "its code AAAA-BBBB no longer works and nothing more was sent" in text
    assert refused.TELL_THEM in text
    assert text.endswith(
        "If they change their mind, run the same command again: it starts a new transfer, "
        "which they authorize on their phone."
    )
    assert "\n" not in text
    # The ER console has no command to run again: the nurse sends the study from its page.
    assert said.console == text.replace("run the same command again", "send the study again")


def test_reissue_says_the_patient_cancelled_and_what_to_do() -> None:
    said = refused.for_reissue(_status("revoked", "patient"), "T" * 24)
    for text in said:
        assert text.startswith(f"The patient cancelled transfer {'T' * 24} on their phone (")
        assert "so its code cannot be re-issued" in text
        assert refused.TELL_THEM in text
    assert "send the study again with trauma-relay push" in said.cli
    assert "send the study again from its page" in said.console
    assert "trauma-relay push" not in said.console
