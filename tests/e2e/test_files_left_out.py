"""Acceptance: a scratched disc. A damaged file stops the push, which says --skip-damaged sends
the rest; with it, the rest goes, the push lists what was left out, and the trauma center's
preview says the study is INCOMPLETE and which files are missing (sealed, file names only).
Files of two patients are refused with each patient and where their files are."""

from __future__ import annotations

from pathlib import Path

from e2e.harness import E2ERelay, run_cli
from sending_site.synthetic import make_ct_study


def _scratched_disc(tmp_path: Path) -> tuple[list[Path], Path]:
    files = make_ct_study(tmp_path / "DOE_JANE" / "disc", 4)
    damaged = files[1]
    damaged.write_bytes(damaged.read_bytes()[:700])
    return files, damaged


def test_a_damaged_file_stops_the_push_and_names_the_way_on(
    relay: E2ERelay, tmp_path: Path
) -> None:
    files, damaged = _scratched_disc(tmp_path)
    before = relay.transfer_count()
    run = relay.push([files[0].parent], workdir=tmp_path).failed()
    assert damaged.name in run.message
    assert "add --skip-damaged to send the rest" in run.message
    assert relay.transfer_count() == before


def test_skip_damaged_sends_the_rest_and_the_trauma_center_sees_what_is_missing(
    relay: E2ERelay, tmp_path: Path
) -> None:
    files, damaged = _scratched_disc(tmp_path)
    shown = relay.push([files[0].parent], workdir=tmp_path, extra=["--skip-damaged"]).ok()
    assert f"LEFT OUT: 1 damaged file(s), not sent: {damaged.name}" in shown.stdout
    assert f"LEFT OUT (damaged) {damaged}" in shown.stdout
    assert "Uploaded 3 images" in shown.stdout

    pushed = relay.push(
        [files[0].parent], workdir=tmp_path, extra=["--skip-damaged", "--json"]
    ).ok()
    body = pushed.json()
    assert body["instances"] == 3
    assert [Path(o["path"]).name for o in body["omitted"]] == [damaged.name]
    relay.authorize(body)

    redeem_args = relay.redeem_args(state=tmp_path / "tc-state", out=tmp_path / "out")
    redeem_args.remove("--json")  # the preview is for people
    redeemed = run_cli(
        redeem_args,
        cwd=tmp_path,
        credential=relay.receiver_credential,
        stdin=body["code"] + "\n",
    ).ok()
    assert (
        f"INCOMPLETE: 1 file was left out at the ER (damaged): {damaged.name}." in redeemed.stdout
    )
    assert "DOE_JANE" not in redeemed.stdout  # the file name only, not the folder it was in
    assert "Delivered 3 verified images" in redeemed.stdout


def test_mixed_patients_are_named_with_their_folders(relay: E2ERelay, tmp_path: Path) -> None:
    make_ct_study(tmp_path / "a", 2, seed=1, patient_name="DOE^JANE", patient_id="ER-1")
    make_ct_study(tmp_path / "b", 5, seed=2, patient_name="ROE^RICHARD", patient_id="ER-2")
    before = relay.transfer_count()
    run = relay.push([tmp_path / "a", tmp_path / "b"], workdir=tmp_path).failed()
    assert "These files belong to 2 different patients" in run.message
    assert (
        f"DOE, JANE (ID ER-1, issuer ER-GENERAL) in {tmp_path / 'a' / 'CT000001.dcm'}, "
        f"{tmp_path / 'a' / 'CT000002.dcm'};" in run.message
    )
    assert f"ROE, RICHARD (ID ER-2, issuer ER-GENERAL) in {tmp_path / 'b'} (5 files)" in run.message
    assert relay.transfer_count() == before
