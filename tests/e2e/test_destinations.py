"""Acceptance: `trauma-relay destinations` lists the relay's trauma centers; push accepts a
destination's display name or any letter case where unambiguous, and refuses a typo before
anything is uploaded, suggesting the closest name and listing the others."""

from __future__ import annotations

from pathlib import Path

import pytest
from relay_harness import RECEIVER, SENDER

from e2e.harness import E2ERelay, run_cli
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
        "destinations": [{"name": RECEIVER, "display_name": "County Trauma"}],
        "disabled": [],
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


def test_a_display_name_with_control_characters_is_shown_escaped(
    fresh_relay: E2ERelay, tmp_path: Path
) -> None:
    """A relay database from before display names were checked may hold an escape sequence
    (clear the screen) or a bidi override: the sites' commands show them escaped, never send
    them to the terminal."""
    relay = fresh_relay
    relay.execute(
        "UPDATE sites SET display_name = ? WHERE name = ?", "County\x1b[2J Trauma", RECEIVER
    )
    relay.execute("UPDATE sites SET display_name = ? WHERE name = ?", "St. Mary's\u202e ED", SENDER)

    listed = relay.as_sender(["destinations", "--relay", relay.url], workdir=tmp_path).ok()
    assert f"{RECEIVER} County\\x1b[2J Trauma" in " ".join(listed.stdout.split())

    typo = relay.as_sender(_push_to(relay, tmp_path, "county-truama"), workdir=tmp_path).failed()
    assert "Did you mean county-trauma (County\\x1b[2J Trauma)?" in typo.message

    make_ct_study(tmp_path / "plain", 2)
    (tmp_path / "plain-push").mkdir()
    plain = relay.push([tmp_path / "plain"], workdir=tmp_path / "plain-push", extra=()).ok()
    assert f"to {RECEIVER} (County\\x1b[2J Trauma)." in plain.stdout

    make_ct_study(tmp_path / "study", 2)
    pushed = relay.pushed_and_authorized(tmp_path / "study", tmp_path)
    args = relay.redeem_args(state=tmp_path / "tc-state", out=tmp_path / "out")
    args.remove("--json")
    redeemed = run_cli(
        args, cwd=tmp_path, credential=relay.receiver_credential, stdin=pushed["code"] + "\n"
    ).ok()
    assert "from St. Mary's\\u202e ED" in redeemed.stdout

    for run in (listed, typo, plain, redeemed):
        assert not any(c in run.stdout + run.stderr for c in "\x1b\u202e"), run.describe()


def test_the_only_trauma_center_disabled_is_told_as_such(
    fresh_relay: E2ERelay, tmp_path: Path
) -> None:
    """The center exists but its operator disabled it: `destinations` and push say so, and who
    can enable it, not that the relay has no trauma center."""
    relay = fresh_relay
    disable = ["site", "disable", RECEIVER, "--data", str(relay.data_dir)]
    run_cli(disable, cwd=relay.root).ok()
    disabled = (
        "county-trauma (County Trauma) is on this relay, but the relay's operator has disabled "
        "it, so nothing can be sent there. Only the relay's operator can enable it again "
        "(trauma-relay site enable county-trauma, run on the relay): ask them."
    )

    args = ["destinations", "--relay", relay.url]
    listed = " ".join(relay.as_sender(args, workdir=tmp_path).ok().stdout.split())
    assert listed == f"This relay has no trauma center to send to now. {disabled}"
    as_json = relay.as_sender([*args, "--json"], workdir=tmp_path).ok().json()
    assert as_json == {
        "destinations": [],
        "disabled": [{"name": RECEIVER, "display_name": "County Trauma"}],
    }

    pushed = relay.as_sender(_push_to(relay, tmp_path, RECEIVER), workdir=tmp_path).failed()
    assert pushed.message == f"trauma-relay: {disabled} Nothing was sent."
    assert relay.transfer_count() == 0
