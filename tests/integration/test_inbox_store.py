"""The agent's DICOM inbox as a hospital runs it (`trauma-relay sender inbox`), fed by DCMTK:
everything indexed with the right counts, files named by the agent's own ids with a zeroed
preamble and the data set exactly as sent, compressed images kept as they came, a resend
replacing rather than doubling, and the spooled study handed to `push` as paths."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pydicom
import pytest
from dicom_corpus import dataset_bytes, transfer_syntax, valid_part10_images
from e2e.harness import comparable, run_cli
from inbox_harness import OUR_FILE_NAME, make_multi_series_study, running_inbox
from peers.dcmtk import echoscu, storescu
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, RLELossless

from sending_site.inbox.handoff import spooled_study
from sending_site.synthetic import make_ct_study

TRAILING_PADDING = 0xFFFCFFFC

pytestmark = pytest.mark.peers


def _uid(path: Path, keyword: str) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True)[keyword].value)


def test_a_multi_series_study_from_storescu_is_spooled_and_indexed(tmp_path: Path) -> None:
    study = make_multi_series_study(tmp_path / "study", seed=4101)
    sent = [path for files in study.values() for path in files]
    study_uid = _uid(sent[0], "StudyInstanceUID")
    with running_inbox(tmp_path / "agent") as agent:
        assert echoscu(agent.port, called_ae_title="TRAUMARELAY").returncode == 0
        run = storescu(agent.port, [tmp_path / "study"], called_ae_title="TRAUMARELAY")
        assert run.returncode == 0, run.stderr

        assert agent.series_counts(study_uid) == {uid: len(files) for uid, files in study.items()}
        assert agent.query(
            "SELECT p.patient_id, p.issuer, p.name, p.birth_date FROM patients p"
        ) == [("ER-12345", "ER-GENERAL", "DOE^JANE", "19850214")]
        assert agent.query("SELECT calling_ae_title FROM instances GROUP BY 1") == [("STORESCU",)]
        thinnest = agent.query("SELECT series_number, thinnest_slice_mm FROM series ORDER BY 1")
        assert thinnest == [(1, 1.0), (2, 5.0), (3, 3.0)]

        kept = agent.kept_files()
        assert len(kept) == len(sent)
        by_instance = {_uid(p, "SOPInstanceUID"): p for p in kept}
        for original in sent:
            ours = by_instance[_uid(original, "SOPInstanceUID")]
            assert OUR_FILE_NAME.fullmatch(ours.name)
            data = ours.read_bytes()
            assert data[:132] == b"\x00" * 128 + b"DICM"
            assert dataset_bytes(ours) == dataset_bytes(original)  # as sent, byte for byte
        assert not agent.unexpected_spool_files()
        assert not agent.files_outside_spool()

        # The same study again (a PACS resending): not doubled, and, byte for byte the same,
        # not replaced either: the files a push may have named already stay.
        again = storescu(agent.port, [tmp_path / "study"], called_ae_title="TRAUMARELAY")
        assert again.returncode == 0, again.stderr
        assert agent.series_counts(study_uid) == {uid: len(files) for uid, files in study.items()}
        assert sorted(agent.kept_files()) == sorted(kept)

        # Handed to push as paths, by series and instance number, while the agent runs.
        paths = asyncio.run(spooled_study(agent.spool, study_uid))
        assert set(paths) == set(agent.kept_files())
        order = [(_uid(p, "SeriesNumber"), _uid(p, "InstanceNumber")) for p in paths]
        assert order == sorted(order, key=lambda pair: (int(pair[0]), int(pair[1])))
    assert f"{len(sent)} image(s) kept, 0 refused" in agent.log()
    assert agent.stop() == 0


def test_several_associations_at_once_deliver_every_image_indexed_once(tmp_path: Path) -> None:
    """Four studies from four storescu runs at once, and the first study again at the same
    time (a PACS resending): images of several associations share group commits, and each
    image is indexed once, with one kept file."""
    folders = [tmp_path / f"study-{n}" for n in range(4)]
    studies = {
        _uid(make_ct_study(folder, 15, seed=4150 + n, patient_id=f"ER-{n}")[0], "StudyInstanceUID")
        for n, folder in enumerate(folders)
    }
    with running_inbox(tmp_path / "agent") as agent:
        with ThreadPoolExecutor(5) as pool:
            runs = list(
                pool.map(
                    lambda folder: storescu(agent.port, [folder], called_ae_title="TRAUMARELAY"),
                    [*folders, folders[0]],
                )
            )
        assert [run.returncode for run in runs] == [0] * 5, [run.stderr for run in runs]

        counts = "SELECT count(*), count(DISTINCT sop_instance_uid), count(DISTINCT file) FROM"
        assert agent.query(f"{counts} instances") == [(60, 60, 60)]
        for study_uid in studies:
            assert list(agent.series_counts(study_uid).values()) == [15]
        kept = {path.stem for path in agent.kept_files()}
        assert kept == {file for (file,) in agent.query("SELECT file FROM instances")}
        assert not agent.unexpected_spool_files()
    assert agent.log().count("image(s) kept, 0 refused") == 5


@pytest.mark.parametrize("syntax", [JPEG2000Lossless, JPEGBaseline8Bit, RLELossless])
def test_compressed_images_are_kept_in_the_syntax_they_came_in(tmp_path: Path, syntax: str) -> None:
    original = next(p for p in valid_part10_images() if transfer_syntax(p) == syntax)
    with running_inbox(tmp_path / "agent") as agent:
        run = storescu(agent.port, [original], called_ae_title="TRAUMARELAY", propose=syntax)
        assert run.returncode == 0, run.stderr
        (kept,) = agent.kept_files()
        assert transfer_syntax(kept) == syntax
        # storescu re-encodes some files: compare element by element, without the trailing
        # padding it drops.
        expected = comparable(pydicom.dcmread(original))
        expected.pop(TRAILING_PADDING, None)
        assert comparable(pydicom.dcmread(kept)) == expected
        assert agent.query("SELECT transfer_syntax_uid FROM instances") == [(syntax,)]


def test_a_start_that_cannot_work_says_what_to_fix(tmp_path: Path) -> None:
    inbox = ["sender", "inbox", "--set", f"state.folder={tmp_path / 'state'}"]
    with running_inbox(tmp_path / "first") as first:
        taken = run_cli(
            [*inbox, "--port", str(first.port), "--spool", str(tmp_path / "second")],
            cwd=tmp_path,
        ).failed()
        assert f"The DICOM port {first.port} is already in use by another program" in (
            taken.message
        )
    bad_title = run_cli(
        [*inbox, "--ae-title", "TOO-LONG-FOR-DICOM", "--spool", str(tmp_path / "s")],
        cwd=tmp_path,
    ).failed()
    assert "The AE title (ae_title) must be 1 to 16" in bad_title.message
    (tmp_path / "a-file").write_text("not a folder")
    no_spool = run_cli(
        [*inbox, "--port", "0", "--spool", str(tmp_path / "a-file" / "spool")],
        cwd=tmp_path,
    ).failed()
    assert "The spool folder" in no_spool.message
    assert "cannot be used" in no_spool.message
