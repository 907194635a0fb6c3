"""What the holds queue says of a study no longer held, to a click from a page left open
(`receiving_site.console.hold_resolved`): who did what and when, as far as this machine kept
it, and that the click changed nothing."""

from __future__ import annotations

import datetime

from receiving_site.console.hold_resolved import SOMEONE, nothing_changed, what_became_of_it
from receiving_site.hold_record import Resolved
from receiving_site.holds_queue import Choice
from receiving_site.state import Delivery

TID = "1M3W7HQFHZ24VDHTMFPH5W6Y"
AT = datetime.datetime(2026, 12, 7, 21, 40, 30, tzinfo=datetime.UTC).timestamp()


def test_a_person_s_decision_is_said_with_who_what_and_when() -> None:
    stored = Resolved(TID, Choice.CONFIRM_LOCAL_RECORD.value, "nurse.joy", AT, instances=3)
    assert what_became_of_it(stored, None) == (
        "nurse.joy filed it under the PACS's record on 2026-12-07 21:40 UTC, in the holds "
        "queue. 3 images went to the PACS."
    )
    dropped = Resolved(TID, Choice.DISCARD.value, "alex (command line)", AT)
    assert what_became_of_it(dropped, None) == (
        "alex (command line) discarded it from this machine on 2026-12-07 21:40 UTC, in the "
        "holds queue."
    )


def test_without_who_decided_the_delivery_is_said_or_that_someone_else_resolved_it() -> None:
    delivered = Delivery(TID, 1, 2048, "ORTHANC@127.0.0.1:4242", False, AT)
    assert what_became_of_it(None, delivered) == (
        "It was delivered from this machine on 2026-12-07 21:40 UTC: 1 image to "
        "ORTHANC@127.0.0.1:4242."
    )
    assert what_became_of_it(None, None) == SOMEONE


def test_the_click_is_named_by_its_button_and_changed_nothing() -> None:
    assert nothing_changed(Choice.STORE_ANYWAY) == (
        "Your click on Store anyway changed nothing: this study is no longer held here."
    )
    assert nothing_changed(None) == "Nothing was changed: this study is no longer held here."
