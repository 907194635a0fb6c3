"""Acceptance: before anything is uploaded, push shows who and what is sent (patient name, birth
date and ID, the study, series and image counts) and asks on the terminal; only "y" sends.
Scripts say --yes; without a terminal, or with --json, push refuses rather than guess."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e.harness import E2ERelay, run_cli, run_cli_on_terminal
from sending_site.synthetic import make_ct_study


def _study(tmp_path: Path) -> Path:
    make_ct_study(tmp_path / "study", 3, patient_name="DOE^JANE", patient_id="ER-77")
    return tmp_path / "study"


def _args(relay: E2ERelay, tmp_path: Path, *extra: str) -> list[str]:
    args = relay.push_args([_study(tmp_path)], state=tmp_path / "er-state", extra=extra)
    args.remove("--yes")  # the harness speaks as a script; here a person answers
    return args


@pytest.mark.parametrize("answer", ["n\n", "\n", "maybe\n", "\x04"])  # \x04: Ctrl-D
def test_anything_but_yes_sends_nothing(relay: E2ERelay, tmp_path: Path, answer: str) -> None:
    before = relay.transfer_count()
    run = run_cli_on_terminal(
        _args(relay, tmp_path), cwd=tmp_path, credential=relay.sender_credential, typed=answer
    ).failed()
    assert "Patient:  DOE, JANE, born 1985-02-14 (ID ER-77, issuer ER-GENERAL)" in run.stdout
    assert "Study:    CT TRAUMA PANSCAN, 2025-01-01" in run.stdout
    assert "Images:   1 series, 3 images" in run.stdout
    assert "To:       county-trauma (County Trauma)" in run.stdout
    assert run.stdout.rstrip().endswith("Send this study to County Trauma? [y/N]")
    assert "Nothing was sent" in run.message
    assert relay.transfer_count() == before
    assert not list((tmp_path / "er-state").glob("sending/*.json"))


def test_yes_on_the_terminal_sends(relay: E2ERelay, tmp_path: Path) -> None:
    before = relay.transfer_count()
    run = run_cli_on_terminal(
        _args(relay, tmp_path), cwd=tmp_path, credential=relay.sender_credential, typed="y\n"
    ).ok()
    question = run.stdout.index("Send this study to County Trauma? [y/N]")
    assert run.stdout.index("Patient:  DOE, JANE") < question < run.stdout.index("Code:")
    assert "Uploaded 3 images" in run.stdout
    assert relay.transfer_count() == before + 1


def test_without_a_terminal_push_asks_for_yes(relay: E2ERelay, tmp_path: Path) -> None:
    before = relay.transfer_count()
    run = run_cli(
        _args(relay, tmp_path), cwd=tmp_path, credential=relay.sender_credential, stdin="y\n"
    ).failed()
    assert "cannot ask without a terminal" in run.message
    assert "Add --yes" in run.message
    assert "Nothing was sent" in run.message
    assert relay.transfer_count() == before


def test_json_needs_yes_even_on_a_terminal(relay: E2ERelay, tmp_path: Path) -> None:
    before = relay.transfer_count()
    run = run_cli_on_terminal(
        _args(relay, tmp_path, "--json"),
        cwd=tmp_path,
        credential=relay.sender_credential,
        typed="y\n",
    ).failed()
    assert "cannot ask with --json" in run.message
    assert "Add --yes" in run.message
    assert relay.transfer_count() == before


def test_yes_sends_and_still_shows_what_was_sent(relay: E2ERelay, tmp_path: Path) -> None:
    run = relay.push([_study(tmp_path)], workdir=tmp_path, extra=()).ok()
    assert "Patient:  DOE, JANE, born 1985-02-14 (ID ER-77, issuer ER-GENERAL)" in run.stdout
    assert "[y/N]" not in run.stdout
    assert "Uploaded 3 images" in run.stdout
