"""Acceptance: the code's QR opens the study, so it is never left readable by others. By default
it goes into the site's state folder, not the current folder; --qr, --link-qr and --sheet files
are written owner-only (0600) from their creation, even over an older, readable file; push
says where; a folder that does not exist is refused before anything is uploaded."""

from __future__ import annotations

import stat
from pathlib import Path

from e2e.harness import E2ERelay
from sending_site.synthetic import make_ct_study


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_qr_goes_owner_only_into_the_state_folder(relay: E2ERelay, tmp_path: Path) -> None:
    make_ct_study(tmp_path / "study", 2)
    run = relay.push([tmp_path / "study"], workdir=tmp_path, extra=()).ok()
    (qr,) = (tmp_path / "er-state" / "qr").glob("transfer-*.png")
    assert f"QR code:     {qr} (readable only by you" in run.stdout
    assert _mode(qr) == 0o600
    assert _mode(qr.parent) == 0o700
    assert not list(tmp_path.glob("*.png")), "a QR was left in the current folder"


def test_files_the_user_names_are_owner_only(relay: E2ERelay, tmp_path: Path) -> None:
    make_ct_study(tmp_path / "study", 2)
    out = tmp_path / "for-the-patient"
    out.mkdir()
    qr, link_qr, sheet = out / "code.png", out / "link.png", out / "sheet.pdf"
    qr.write_bytes(b"an older file anyone could read")
    qr.chmod(0o644)
    pushed = relay.push(
        [tmp_path / "study"],
        workdir=tmp_path,
        extra=["--json", "--qr", str(qr), "--link-qr", str(link_qr), "--sheet", str(sheet)],
    ).ok()
    body = pushed.json()
    assert (body["qr_png"], body["link_qr_png"], body["sheet_pdf"]) == tuple(
        map(str, (qr, link_qr, sheet))
    )
    assert qr.read_bytes().startswith(b"\x89PNG")
    assert [_mode(p) for p in (qr, link_qr, sheet)] == [0o600] * 3


def test_a_missing_folder_is_refused_before_sending(relay: E2ERelay, tmp_path: Path) -> None:
    make_ct_study(tmp_path / "study", 2)
    before = relay.transfer_count()
    run = relay.push(
        [tmp_path / "study"],
        workdir=tmp_path,
        extra=["--sheet", str(tmp_path / "no-such-folder" / "sheet.pdf")],
    ).failed()
    assert f"the folder {tmp_path / 'no-such-folder'} does not exist" in run.message
    assert "nothing was sent" in run.message
    assert relay.transfer_count() == before
