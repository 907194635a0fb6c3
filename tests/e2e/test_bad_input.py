"""Acceptance: bad input. Each case gives a clear message on stderr and a non-zero exit status,
and leaves nothing half-done that could be redeemed (no transfer on the relay, nothing in the
PACS); non-DICOM files beside a study are skipped and listed instead."""

from __future__ import annotations

import gc
import shutil
import warnings
from pathlib import Path

import pydicom
import pytest
from dicom_corpus import transfer_syntax, valid_part10_images
from peers.ports import free_port
from peers.storage_scp import RecordingStorageSCP
from pydicom.filebase import DicomBytesIO
from pydicom.fileset import FileSet
from pydicom.filewriter import write_dataset, write_file_meta_info

from e2e.harness import CliRun, E2ERelay, assert_identical_in_scp, pacs_address, run_cli
from sending_site.synthetic import make_ct_study

PIXEL_DATA = 0x7FE00010


def _refused_push(relay: E2ERelay, paths: list[Path], workdir: Path, *phrases: str) -> CliRun:
    """Push `paths`; it must fail saying `phrases`, with no transfer created and no record of
    one kept at the sending site."""
    before = relay.transfer_count()
    run = relay.push(paths, workdir=workdir).failed()
    for phrase in phrases:
        assert phrase in run.message, run.describe()
    assert relay.transfer_count() == before
    journals = workdir / "er-state" / "sending"
    assert not journals.exists() or list(journals.iterdir()) == []
    return run


def test_zero_byte_file(relay: E2ERelay, tmp_path: Path) -> None:
    empty = tmp_path / "IM0001.dcm"
    empty.touch()
    _refused_push(relay, [empty], tmp_path, "No DICOM images", "IM0001.dcm", "empty")


def test_synthetic_file_cut_inside_its_pixel_data(relay: E2ERelay, tmp_path: Path) -> None:
    (path,) = make_ct_study(tmp_path / "study", 1)
    ds = pydicom.dcmread(path)
    pixels = ds.get_item(PIXEL_DATA)
    cut = pixels.value_tell + pixels.length // 2
    path.write_bytes(path.read_bytes()[:cut])
    _refused_push(relay, [path], tmp_path, "CT000001.dcm", "cut off")


def test_jpeg2000_file_cut_inside_its_encapsulated_pixel_data(
    relay: E2ERelay, tmp_path: Path
) -> None:
    original = next(p for p in valid_part10_images() if "JPEG 2000" in transfer_syntax(p).name)
    pixels = pydicom.dcmread(original).get_item(PIXEL_DATA)
    assert pixels.length == 0xFFFFFFFF  # encapsulated: undefined length, fragments
    data = original.read_bytes()
    cut = tmp_path / "j2k.dcm"
    cut.write_bytes(data[: pixels.value_tell + (len(data) - pixels.value_tell) // 2])
    _refused_push(relay, [cut], tmp_path, "j2k.dcm", "cut off")


def test_pixel_data_shorter_than_its_image_is_refused_naming_the_file(
    relay: E2ERelay, tmp_path: Path
) -> None:
    """An export that lost the end of the pixels and wrote the length of what was left: every
    element whole, half the image there. Push refuses it as the inbox does."""
    (path,) = make_ct_study(tmp_path / "study", 1)
    ds = pydicom.dcmread(path)
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    ds.save_as(path)
    _refused_push(relay, [path], tmp_path, "CT000001.dcm", "pixel data holds")


def test_a_file_not_encoded_as_its_file_meta_says_is_refused_naming_it(
    relay: E2ERelay, tmp_path: Path
) -> None:
    """Implicit VR data behind file meta that says explicit VR: pydicom guesses its way through,
    DCMTK at the trauma center would not. Push refuses it before a transfer exists."""
    (path,) = make_ct_study(tmp_path / "study", 1)
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    body = DicomBytesIO()
    body.is_implicit_VR, body.is_little_endian = True, True
    write_dataset(body, ds)
    meta = DicomBytesIO()
    write_file_meta_info(meta, ds.file_meta)
    path.write_bytes(b"\x00" * 128 + b"DICM" + meta.getvalue() + body.getvalue())
    _refused_push(relay, [path], tmp_path, "CT000001.dcm", "not encoded in the transfer syntax")


def test_a_damaged_file_in_a_study_stops_the_push(relay: E2ERelay, tmp_path: Path) -> None:
    """A study missing a slice must not travel as if complete (a reason scans are repeated)."""
    files = make_ct_study(tmp_path / "study", 5)
    files[2].write_bytes(files[2].read_bytes()[:-3000])
    _refused_push(relay, [tmp_path / "study"], tmp_path, "CT000003.dcm", "damaged")


def test_non_dicom_file_alone(relay: E2ERelay, tmp_path: Path) -> None:
    notes = tmp_path / "README.TXT"
    notes.write_text("Burned by ACME PACS 4.2\n")
    _refused_push(relay, [notes], tmp_path, "No DICOM images", "README.TXT", "not a DICOM file")


def test_non_dicom_files_beside_a_study_are_skipped_and_listed(
    relay: E2ERelay, storage_scp: RecordingStorageSCP, tmp_path: Path
) -> None:
    files = make_ct_study(tmp_path / "disc" / "images", 3)
    (tmp_path / "disc" / "README.TXT").write_text("Burned by ACME PACS 4.2\n")
    (tmp_path / "disc" / "viewer.exe").write_bytes(b"MZ\x90\x00" + bytes(600))

    pushed, redeemed = relay.send(
        [tmp_path / "disc"], workdir=tmp_path / "sites", pacs=pacs_address(storage_scp)
    )

    assert pushed["instances"] == redeemed["instances"] == 3
    skipped = {Path(s["path"]).name: s["reason"] for s in pushed["skipped"]}
    assert skipped == {"README.TXT": "not a DICOM file", "viewer.exe": "not a DICOM file"}
    assert_identical_in_scp(storage_scp, files)


def _disc_escaping_its_root(tmp_path: Path) -> Path:
    """A disc whose DICOMDIR names `../OUTSIDE0000000/DIR00000/IM000000`, where a DICOM file
    (of the same patient) waits to be picked up."""
    files = make_ct_study(tmp_path / "source", 2)
    disc = tmp_path / "disc"
    with warnings.catch_warnings():
        # FileSet keeps a TemporaryDirectory it never cleans up; let it go quietly.
        warnings.simplefilter("ignore", ResourceWarning)
        fileset = FileSet()
        for path in files:
            fileset.add(path)
        fileset.write(disc)
        del fileset
        gc.collect()
    dicomdir = pydicom.dcmread(disc / "DICOMDIR")
    record = next(r for r in dicomdir.DirectoryRecordSequence if "ReferencedFileID" in r)
    # Same encoded length as the original ID, so the record offsets in the file stay right.
    assert len("\\".join(record.ReferencedFileID)) == 35
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Invalid value for VR CS: '..'", UserWarning)
        record.ReferencedFileID = ["..", "OUTSIDE0000000", "DIR00000", "IM000000"]
        dicomdir.save_as(disc / "DICOMDIR")
    outside = tmp_path / "OUTSIDE0000000" / "DIR00000"
    outside.mkdir(parents=True)
    shutil.copyfile(files[0], outside / "IM000000")
    return disc


@pytest.mark.parametrize("given", ["folder", "dicomdir"])
def test_dicomdir_pointing_outside_its_root(relay: E2ERelay, tmp_path: Path, given: str) -> None:
    disc = _disc_escaping_its_root(tmp_path)
    target = disc if given == "folder" else disc / "DICOMDIR"
    _refused_push(relay, [target], tmp_path, "DICOMDIR", "outside")


def test_mixed_patients(relay: E2ERelay, tmp_path: Path) -> None:
    make_ct_study(tmp_path / "a", 2, seed=1, patient_name="DOE^JANE", patient_id="ER-1")
    make_ct_study(tmp_path / "b", 2, seed=2, patient_name="ROE^RICHARD", patient_id="ER-2")
    _refused_push(relay, [tmp_path / "a", tmp_path / "b"], tmp_path, "2 different patients")


def test_push_to_an_unreachable_relay(relay: E2ERelay, tmp_path: Path) -> None:
    make_ct_study(tmp_path / "study", 2)
    closed = f"http://127.0.0.1:{free_port()}"
    run = relay.push(
        [tmp_path / "study"], workdir=tmp_path, relay_url=closed, extra=["--retry-for", "0"]
    ).failed()
    assert "could not be reached" in run.message
    assert closed in run.message
    assert not (tmp_path / "er-state" / "sending").exists() or not any(
        (tmp_path / "er-state" / "sending").iterdir()
    )


def test_redeem_from_an_unreachable_relay(relay: E2ERelay, tmp_path: Path) -> None:
    make_ct_study(tmp_path / "study", 2)
    pushed = relay.push([tmp_path / "study"], workdir=tmp_path).ok().json()
    relay.authorize(pushed)
    args = relay.redeem_args(state=tmp_path / "tc-state", out=tmp_path / "inbox")
    args[args.index(relay.url)] = f"http://127.0.0.1:{free_port()}"
    run = run_cli(
        args, cwd=tmp_path, credential=relay.receiver_credential, stdin=pushed["code"] + "\n"
    ).failed()
    assert "could not be reached" in run.message
    # The code was never spent: it still works against the real relay.
    relay.redeem(pushed["code"], workdir=tmp_path, out=tmp_path / "inbox").ok()


@pytest.mark.parametrize("pacs", ["refuses-association", "wrong-called-ae-title", "closed-port"])
def test_pacs_that_refuses_or_is_unreachable(
    relay: E2ERelay, storage_scp: RecordingStorageSCP, tmp_path: Path, pacs: str
) -> None:
    files = make_ct_study(tmp_path / "study", 3)
    pushed = relay.push([tmp_path / "study"], workdir=tmp_path).ok().json()
    relay.authorize(pushed)

    if pacs == "refuses-association":
        refusing = RecordingStorageSCP(refuse_association=True)
    else:
        refusing = RecordingStorageSCP(require_called_ae_title=True)
    with refusing:
        if pacs == "closed-port":
            address = f"PACS@127.0.0.1:{free_port()}"
        elif pacs == "wrong-called-ae-title":
            address = f"SOMEONE-ELSE@127.0.0.1:{refusing.port}"
        else:
            address = pacs_address(refusing)
        run = relay.redeem(pushed["code"], workdir=tmp_path, pacs=address).failed()
        assert refusing.stores == []
        if pacs != "closed-port":
            assert refusing.rejected_associations == 1
    assert "nothing was stored" in run.message.lower(), run.describe()
    want = "could not be reached" if pacs == "closed-port" else "refused the association"
    assert want in run.message

    # The PACS was checked (C-ECHO) before the code was sent: the code is not spent, and the
    # same command with the same code delivers the study once the PACS is fixed.
    assert "The code has not been used" in run.message
    ((state, failed),) = relay.query(
        "SELECT state, failed_attempts FROM transfers WHERE id = ?", pushed["transfer_id"]
    )
    assert (state, failed) == ("authorized", 0)
    again = relay.redeem(pushed["code"], workdir=tmp_path, pacs=pacs_address(storage_scp)).ok()
    assert again.json()["instances"] == 3
    assert_identical_in_scp(storage_scp, files)


def _disc(tmp_path: Path, files: list[Path]) -> Path:
    """A disc with a DICOMDIR naming `files` (written by pydicom's FileSet)."""
    disc = tmp_path / "disc"
    with warnings.catch_warnings():
        # FileSet keeps a TemporaryDirectory it never cleans up; let it go quietly.
        warnings.simplefilter("ignore", ResourceWarning)
        fileset = FileSet()
        for path in files:
            fileset.add(path)
        fileset.write(disc)
        del fileset
        gc.collect()
    return disc


@pytest.mark.parametrize("given", ["folder", "dicomdir"])
def test_images_on_a_disc_that_its_dicomdir_does_not_list_are_sent_and_listed(
    relay: E2ERelay, storage_scp: RecordingStorageSCP, tmp_path: Path, given: str
) -> None:
    """Burners leave images out of the DICOMDIR (a late series, a file copied by hand): they
    travel too, and the push says so; the disc's viewer and notes are counted, not sent."""
    files = make_ct_study(tmp_path / "source", 4)
    disc = _disc(tmp_path, files[:2])
    (disc / "LATE").mkdir()
    shutil.copyfile(files[2], disc / "LATE" / "IM000001")
    shutil.copyfile(files[3], disc / "IM_EXTRA.dcm")
    (disc / "README.TXT").write_text("Burned by ACME PACS 4.2\n")
    (disc / "VIEWER").mkdir()
    (disc / "VIEWER" / "viewer.exe").write_bytes(b"MZ\x90\x00" + bytes(600))
    target = disc if given == "folder" else disc / "DICOMDIR"

    pushed, redeemed = relay.send(
        [target], workdir=tmp_path / "sites", pacs=pacs_address(storage_scp)
    )

    assert pushed["instances"] == redeemed["instances"] == 4
    notes = {Path(n["path"]).name: n["note"] for n in pushed["notes"]}
    assert notes == {
        "IM000001": "not in the DICOMDIR, sent anyway",
        "IM_EXTRA.dcm": "not in the DICOMDIR, sent anyway",
        "disc": "2 other file(s) on this disc are not DICOM images (a viewer, for example); "
        "not sent",
    }
    assert pushed["skipped"] == []
    assert_identical_in_scp(storage_scp, files)


def test_an_image_missing_from_the_dicomdir_is_shown_in_the_push_output(
    relay: E2ERelay, tmp_path: Path
) -> None:
    files = make_ct_study(tmp_path / "source", 3)
    disc = _disc(tmp_path, files[:2])
    shutil.copyfile(files[2], disc / "IM_EXTRA.dcm")
    run = relay.push([disc], workdir=tmp_path, extra=()).ok()
    assert "Uploaded 3 images" in run.stdout
    assert f"{(disc / 'IM_EXTRA.dcm').resolve()}: not in the DICOMDIR, sent anyway" in run.stdout


def test_a_link_on_a_disc_to_a_file_elsewhere_is_not_read(relay: E2ERelay, tmp_path: Path) -> None:
    files = make_ct_study(tmp_path / "source", 3)
    disc = _disc(tmp_path, files[:2])
    (disc / "IM_LINK").symlink_to(files[2])
    pushed = relay.push([disc], workdir=tmp_path).ok().json()
    assert pushed["instances"] == 2
    assert [(Path(s["path"]).name, s["reason"]) for s in pushed["skipped"]] == [
        ("IM_LINK", "a link to outside the disc; not read")
    ]


def test_a_patient_name_with_a_stray_escape_is_refused_naming_file_and_attribute(
    relay: E2ERelay, tmp_path: Path
) -> None:
    """An ESC that begins no escape sequence of the file's character set (UTF-8 here, which has
    none) is not DICOM: refused before a transfer exists, saying which value of which file and
    what to do, not as a manifest error half-way through nor with pydicom's warning."""
    make_ct_study(tmp_path / "study", 2, patient_name="DOE^JOHN\x1b")
    run = _refused_push(
        relay,
        [tmp_path / "study"],
        tmp_path,
        'CT000001.dcm and 1 other file: the Patient\'s Name (0010,0010) is "DOE^JOHN\\x1b"',
        "Specific Character Set (0008,0005)",
        "the file declares ISO_IR 192",
        "Nothing was sent. Have the value corrected where the study was made",
    )
    assert "\x1b" not in run.stderr
    assert "Warning" not in run.stderr
    assert "trauma-relay version" not in run.message


def test_a_patient_name_in_iso_2022_escape_sequences_is_sent(
    relay: E2ERelay, tmp_path: Path
) -> None:
    """ESC is legal in a PN whose file declares ISO 2022 character sets: pydicom decodes the
    escape sequences, and the study goes."""
    for path in make_ct_study(tmp_path / "study", 2):
        ds = pydicom.dcmread(path)
        ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
        ds["PatientName"].value = b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B"
        ds.save_as(path)
    pushed = relay.push([tmp_path / "study"], workdir=tmp_path).ok()
    assert pushed.json()["recipient"] == "county-trauma"
