"""How `trauma-relay transfers` words the relay's status of each transfer this site sent."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from sending_site.abandon import ALREADY_REDEEMED, REPLACED_AS_ASKED
from sending_site.journal import TransferJournal
from sending_site.refusals import glass_abandoned
from sending_site.transfers import REVOKED_HERE, status_words, view, when

AT = 1_800_000_000.0
TID = "0123456789ABCDEFGHJKMNPQ"


def _record(**changes: Any) -> TransferJournal:
    record = TransferJournal(
        transfer_id=TID,
        relay="http://relay",
        recipient="county-trauma",
        data_key=bytes(32),
        locator=1,
        code="",
        capability="",
        authorization_token="",
        expires_at=AT + 3600,
        objects=[],
        done=True,
    )
    for key, value in changes.items():
        setattr(record, key, value)
    return record


def _status(state: str, **fields: Any) -> dict[str, Any]:
    return {
        "transfer_id": TID,
        "state": state,
        "recipient": {"name": "county-trauma", "display_name": "County Trauma"},
        "created_at": AT,
        "expires_at": AT + 3600,
        "authorized_at": None,
        "authorized_by": None,
        "break_glass": False,
        "redeemed_at": None,
        "delivered_at": None,
        "revoked_at": None,
        "receipt": None,
        **fields,
    }


def _delivered(**receipt: Any) -> dict[str, Any]:
    """Delivered into the PACS at AT, with these receipt details."""
    details = {"instances": 212, "destination": "pacs", "received_at": AT, **receipt}
    return _status("delivered", delivered_at=AT, receipt=details)


def test_when_is_local_time_with_its_zone() -> None:
    local = datetime.datetime.fromtimestamp(AT).astimezone()
    assert when(AT) == local.strftime("%Y-%m-%d %H:%M ") + str(local.tzname())
    assert when(None) == "(time not known)"


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (_status("awaiting_authorization"), "awaiting authorization by the patient or family"),
        (
            _status("authorized", authorized_by="family", authorized_at=AT),
            f"authorized by the family {when(AT)}; not redeemed yet",
        ),
        (
            _status("authorized", authorized_by="break_glass", break_glass=True, authorized_at=AT),
            f"authorized by BREAK-GLASS (a clinician) {when(AT)}; not redeemed yet",
        ),
        (
            _status("redeemed", redeemed_at=AT),
            f"redeemed by the trauma center {when(AT)}; not delivered yet (being checked and "
            "stored)",
        ),
        (
            _status(
                "redeemed",
                redeemed_at=AT,
                receipt={"instances": 240, "destination": "review", "received_at": AT + 60},
            ),
            f"held at the trauma center for review since {when(AT + 60)}: a person is checking "
            "the patient's identity before it goes into their PACS",
        ),
        (
            _status(
                "redeemed",
                redeemed_at=AT,
                receipt={"instances": 0, "destination": "discarded", "received_at": AT + 90},
            ),
            f"discarded at the trauma center {when(AT + 90)} after review; none of its images "
            "went into their PACS. Call them; if they still need the images, run the same push "
            "again: it goes as a new transfer, with a new code",
        ),
        (
            _status(
                "redeemed",
                redeemed_at=AT,
                receipt={"instances": 7, "destination": "discarded", "received_at": AT + 90},
            ),
            f"discarded at the trauma center {when(AT + 90)} after review; 7 of its images were "
            "already in their PACS, which has the study INCOMPLETE. Call them; if they still "
            "need the images, run the same push again: it goes as a new transfer, with a new code",
        ),
        (
            _status(
                "delivered",
                delivered_at=AT,
                receipt={"instances": 240, "destination": "pacs", "received_at": AT + 60},
            ),
            f"delivered {when(AT + 60)}: 240 images into the trauma center's PACS",
        ),
        (
            _status(
                "delivered",
                receipt={"instances": 3, "destination": "folder", "complete": False},
                delivered_at=AT,
            ),
            f"delivered {when(AT)}: 3 images (not all of them) into a folder at the trauma center",
        ),
        (
            _status("delivered", receipt={"instances": 1, "destination": "pacs"}, delivered_at=AT),
            f"delivered {when(AT)}: 1 image into the trauma center's PACS",
        ),
        (
            _delivered(decompressed=40, reconciled=True),
            f"delivered {when(AT)}: 212 images into the trauma center's PACS, 40 decompressed, "
            "filed under the local record",
        ),
        (
            _delivered(decompressed=0, reconciled=False),
            f"delivered {when(AT)}: 212 images into the trauma center's PACS",
        ),
        (_status("revoked", revoked_at=AT), f"revoked {when(AT)}"),
        (
            _status("revoked", revoked_at=AT, revoked_by="family", declined=True),
            f"revoked {when(AT)}: the patient's family declined to share it on their phone",
        ),
        (
            _status("revoked", revoked_at=AT, revoked_by="patient"),
            f"revoked {when(AT)}: the patient cancelled it on their phone",
        ),
        (_status("expired"), f"expired {when(AT + 3600)}: its images are deleted"),
        (
            _status("locked"),
            f"locked after too many wrong codes: trauma-relay reissue {TID} gives it a new code",
        ),
        (_status("created"), "not started: its code was never activated"),
        (_status("some_new_state"), "some new state"),
    ],
)
def test_each_state_in_words(status: dict[str, Any], words: str) -> None:
    assert status_words(status, _record()) == words


def test_an_unfinished_upload_says_how_to_finish_it() -> None:
    words = status_words(_status("awaiting_authorization"), _record(done=False))
    assert words.endswith("; upload not finished: run the same push again to finish it")
    assert "upload not finished" not in status_words(_status("revoked"), _record(done=False))


def test_the_console_names_its_buttons_and_knows_an_upload_running() -> None:
    waiting, unfinished = _status("awaiting_authorization"), _record(done=False)
    assert status_words(waiting, unfinished, at_console=True).endswith(
        "; upload not finished: Upload again to finish it"
    )
    assert status_words(waiting, unfinished, uploading=True, at_console=True).endswith(
        "; uploading"
    )
    assert status_words(_status("locked"), _record(), at_console=True) == (
        "locked after too many wrong codes: Give a new code to unlock it"
    )
    shown = view(unfinished, waiting, uploading=True, at_console=True)
    assert shown.status.endswith("; uploading")
    discarded = _status(
        "redeemed", receipt={"instances": 0, "destination": "discarded", "received_at": AT}
    )
    assert status_words(discarded, _record(), at_console=True).endswith(
        "if they still need the images, send the study again: it goes as a new transfer, with a "
        "new code"
    )


def test_a_transfer_given_up_says_why_unless_revoked_here() -> None:
    replaced = _record(abandoned="the files changed, and this transfer replaces it")
    assert status_words(_status("revoked", revoked_at=AT), replaced) == (
        f"revoked {when(AT)} (given up: the files changed, and this transfer replaces it)"
    )
    here = _record(abandoned=REVOKED_HERE)
    assert status_words(_status("revoked", revoked_at=AT), here) == f"revoked {when(AT)}"


def test_at_the_console_a_reason_given_up_names_no_command_line_option() -> None:
    """The console's list, and its refusals of break-glass, say why a transfer was given up
    without the command line's `--replace` or `trauma-relay revoke` (it was a button)."""
    asked = _record(abandoned=REPLACED_AS_ASKED + ALREADY_REDEEMED)
    revoked = _status("revoked", revoked_at=AT)
    assert status_words(revoked, asked, at_console=True) == (
        f"revoked {when(AT)} (given up: this transfer replaces it, sent as a new transfer; the "
        "trauma center had already redeemed it)"
    )
    assert "--replace" in status_words(revoked, asked)  # the command line keeps its words
    said = glass_abandoned(_record(abandoned=REVOKED_HERE))
    assert "trauma-relay" not in said.console
    assert f"Transfer {TID} was given up (revoked here), so break-glass" in said.console
    assert "(revoked here with trauma-relay revoke)" in said.cli


def test_the_view_shows_the_display_name_and_keeps_the_receipt() -> None:
    receipt = {"instances": 3, "destination": "pacs", "received_at": AT}
    shown = view(_record(), _status("delivered", receipt=receipt, delivered_at=AT))
    assert (shown.recipient, shown.state, shown.receipt) == ("County Trauma", "delivered", receipt)
    assert shown.upload_finished
    assert shown.to_json()["status"] == shown.status


def test_a_code_whose_re_issue_had_no_answer_is_said_where_a_code_is_wanted() -> None:
    """A re-issue reached the relay and no answer came (`code_confirmed` false): the list says
    the new code may not be the relay's and how to give another, in the command line's words
    or the console's; not once the code is no longer wanted (redeemed, over, given up), nor
    on the transfer's page, which says it in the code's place."""
    unconfirmed = _record(code_confirmed=False)
    words = status_words(
        _status("authorized", authorized_by="family", authorized_at=AT), unconfirmed
    )
    assert words == (
        f"authorized by the family {when(AT)}; not redeemed yet; the new code may not have "
        "reached the relay, so it is not shown or printed, and the code before it may no longer "
        f"work. Run trauma-relay reissue {TID} again, then give the patient the new code."
    )
    at_console = status_words(_status("locked"), unconfirmed, at_console=True)
    assert at_console.endswith(
        "; the new code may not have reached the relay, so it is not shown or printed, and the "
        "code before it may no longer work. Press Give a new code again, then print the new "
        "transfer sheet."
    )
    on_its_page = status_words(_status("locked"), unconfirmed, at_console=True, code_note=False)
    assert on_its_page == status_words(_status("locked"), _record(), at_console=True)
    for over in (_status("redeemed", redeemed_at=AT), _status("revoked", revoked_at=AT)):
        assert "new code" not in status_words(over, unconfirmed)
    given_up = _record(code_confirmed=False, abandoned=REVOKED_HERE)
    assert "new code" not in status_words(_status("awaiting_authorization"), given_up)
