"""Acceptance, at the command line: `redeem` shows trauma-center staff who the patient is, what
the study is and how it was authorized (break-glass marked), from the verified summary, before
the images are delivered."""

from __future__ import annotations

from pathlib import Path

from e2e.harness import E2ERelay, run_cli
from sending_site.synthetic import make_ct_study


def _redeem_for_a_person(relay: E2ERelay, tmp_path: Path, code: str) -> str:
    args = relay.redeem_args(state=tmp_path / "tc", out=tmp_path / "out")
    args.remove("--json")
    run = run_cli(args, cwd=tmp_path, credential=relay.receiver_credential, stdin=code + "\n")
    return run.ok().stdout


def test_redeem_previews_the_patient_and_the_study(relay: E2ERelay, tmp_path: Path) -> None:
    files = make_ct_study(tmp_path / "study", 3, seed=91, patient_name="DOE^JANE")
    pushed = relay.push([files[0].parent], workdir=tmp_path).ok().json()
    relay.authorize(pushed)

    out = _redeem_for_a_person(relay, tmp_path, pushed["code"])

    preview = out.splitlines()
    assert "Patient:  DOE, JANE, born 1985-02-14, female (ER patient ID ER-12345, issuer " in (
        "\n".join(preview)
    )
    assert any(line.startswith("Study:    CT TRAUMA PANSCAN, CT, ") for line in preview)
    assert any("(1 series, 3 images)" in line for line in preview)
    assert any("authorized by the patient or family" in line for line in preview)
    assert "BREAK-GLASS" not in out
    # The preview comes before the delivery.
    assert out.index("Patient:") < out.index("Delivered 3 verified images")


def test_a_break_glass_transfer_says_so_in_the_preview(relay: E2ERelay, tmp_path: Path) -> None:
    files = make_ct_study(tmp_path / "study", 2, seed=92)
    pushed = (
        relay.push(
            [files[0].parent],
            workdir=tmp_path,
            extra=(
                "--json",
                "--break-glass",
                "Unconscious after a road crash; no family reachable.",
                "--clinician",
                "Dr. Rivera",
            ),
        )
        .ok()
        .json()
    )

    out = _redeem_for_a_person(relay, tmp_path, pushed["code"])

    assert "(authorized by BREAK-GLASS)" in out
    assert "BREAK-GLASS: authorized by a clinician, not by the patient or family" in out


def test_break_glass_added_after_the_push_says_so_in_the_preview(
    relay: E2ERelay, tmp_path: Path
) -> None:
    """The ER adds break-glass once the study is sent (the summary, sealed at push, says the
    patient or family): the preview believes the relay, which says a clinician authorized."""
    files = make_ct_study(tmp_path / "study", 2, seed=93)
    pushed = relay.push([files[0].parent], workdir=tmp_path).ok().json()
    glass = [
        "break-glass",
        pushed["transfer_id"],
        "--state",
        str(tmp_path / "er-state"),
        "--reason",
        "Unconscious after a road crash; no family reachable.",
        "--clinician",
        "Dr. Rivera",
    ]
    run_cli(glass, cwd=tmp_path, credential=relay.sender_credential).ok()

    out = _redeem_for_a_person(relay, tmp_path, pushed["code"])

    assert "(authorized by BREAK-GLASS)" in out
    assert "BREAK-GLASS: authorized by a clinician, not by the patient or family" in out
    assert "authorized by the patient or family" not in out.replace("not by the patient", "")
