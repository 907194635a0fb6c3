"""Acceptance: `trauma-relay destinations` lists the relay's trauma centers; push accepts a
destination's display name or any letter case where unambiguous, and refuses a typo before
anything is uploaded, suggesting the closest name and listing the others."""

from __future__ import annotations

from pathlib import Path

import pytest
from relay_harness import RECEIVER

from e2e.harness import E2ERelay
from sending_site.synthetic import make_ct_study


def _push_to(relay: E2ERelay, tmp_path: Path, to: str) -> list[str]:
    make_ct_study(tmp_path / "study", 2)
    args = relay.push_args([tmp_path / "study"], state=tmp_path / "er-state", extra=["--json"])
    args[args.index(RECEIVER)] = to
    return args


def test_destinations_lists_names_and_display_names(relay: E2ERelay, tmp_path: Path) -> None:
    args = ["destinations", "--relay", relay.url]
    listed = relay.as_sender(args, workdir=tmp_path).ok()
    assert [line.split(None, 1) for line in listed.stdout.splitlines()[1:]] == [
        [RECEIVER, "County Trauma"]
    ]
    as_json = relay.as_sender([*args, "--json"], workdir=tmp_path)
    assert as_json.ok().json() == {
        "destinations": [{"name": RECEIVER, "display_name": "County Trauma"}]
    }


def test_a_typo_is_refused_with_the_closest_name(relay: E2ERelay, tmp_path: Path) -> None:
    before = relay.transfer_count()
    run = relay.as_sender(_push_to(relay, tmp_path, "county-truama"), workdir=tmp_path).failed()
    assert '"county-truama" is not a trauma center on this relay' in run.message
    assert "Did you mean county-trauma (County Trauma)?" in run.message
    assert "The trauma centers are: county-trauma (County Trauma)" in run.message
    assert "Nothing was sent" in run.message
    assert relay.transfer_count() == before
    assert not list((tmp_path / "er-state").glob("sending/*.json"))


@pytest.mark.parametrize("to", ["County-Trauma", "County Trauma", "county  trauma"])
def test_any_case_or_the_display_name_is_accepted(relay: E2ERelay, tmp_path: Path, to: str) -> None:
    pushed = relay.as_sender(_push_to(relay, tmp_path, to), workdir=tmp_path)
    assert pushed.ok().json()["recipient"] == RECEIVER
    # Journaled under the site's own name, so running the command again resumes it.
    (journal,) = (tmp_path / "er-state" / "sending").glob("*.json")
    assert f'"recipient": "{RECEIVER}"' in journal.read_text()
