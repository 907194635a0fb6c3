"""The test peers themselves work: DCMTK, Orthanc, the recording SCP and the DICOM corpus."""

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from dicom_corpus import dataset_bytes, decode_dataset, transfer_syntax, valid_part10_images
from peers import dcmtk
from peers.orthanc import OrthancServer
from peers.storage_scp import RecordingStorageSCP
from pydicom.tag import BaseTag
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

# What pydicom 3.0.2 ships in a form a PACS can store. Its JPEG-LS near-lossless files have no
# Study or Series Instance UID, so that syntax is absent; update this set deliberately if a
# pydicom upgrade changes the bundled files.
SHIPPED_TRANSFER_SYNTAXES = {
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
}
# Its only JPEG-LS Lossless file shares a SOP Instance UID with RLE and other encodings.
DISTINCT_INSTANCE_TRANSFER_SYNTAXES = SHIPPED_TRANSFER_SYNTAXES - {JPEGLSLossless}


DATASET_TRAILING_PADDING = 0xFFFCFFFC


def sop_instance_uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def comparable(ds: pydicom.Dataset) -> dict[BaseTag, object]:
    """Element values, leaving out what storescu recomputes or drops when it re-encodes.

    VRs are left out too: storescu writes encapsulated Pixel Data as OB where some files say
    OW, as PS3.5 A.4 requires.
    """
    return {
        element.tag: element.value
        for element in ds
        if element.tag.element != 0x0000 and element.tag != DATASET_TRAILING_PADDING
    }


def test_corpus_covers_every_transfer_syntax_pydicom_ships() -> None:
    distinct = valid_part10_images()
    every = valid_part10_images(one_per_instance=False)

    assert {transfer_syntax(path) for path in every} == SHIPPED_TRANSFER_SYNTAXES
    assert {transfer_syntax(path) for path in distinct} == DISTINCT_INSTANCE_TRANSFER_SYNTAXES
    uids = [sop_instance_uid(path) for path in distinct]
    assert len(set(uids)) == len(uids)
    assert set(distinct) <= set(every)
    assert not [path for path in every if "DICOMDIR" in path.name]


@pytest.mark.peers
def test_storescu_delivers_synthetic_study_byte_for_byte(
    synthetic_study: list[Path], storage_scp: RecordingStorageSCP
) -> None:
    result = dcmtk.storescu(storage_scp.port, [synthetic_study[0].parent])

    assert result.returncode == 0, result.stderr
    received = storage_scp.received
    assert set(received) == {sop_instance_uid(path) for path in synthetic_study}
    for path in synthetic_study:
        instance = received[sop_instance_uid(path)]
        assert instance.dataset == dataset_bytes(path)
        assert instance.transfer_syntax == ExplicitVRLittleEndian
        assert instance.calling_ae_title == "STORESCU"


@pytest.mark.peers
def test_storescu_delivers_every_corpus_file_in_its_own_transfer_syntax(
    storage_scp: RecordingStorageSCP,
) -> None:
    by_syntax: defaultdict[str, list[Path]] = defaultdict(list)
    for path in valid_part10_images():
        by_syntax[transfer_syntax(path)].append(path)

    for syntax, paths in by_syntax.items():
        result = dcmtk.storescu(storage_scp.port, paths, propose=syntax)
        assert result.returncode == 0, result.stderr

    received = storage_scp.received
    for path in valid_part10_images():
        instance = received[sop_instance_uid(path)]
        assert instance.transfer_syntax == transfer_syntax(path), path.name
        sent = comparable(pydicom.dcmread(path))
        assert comparable(decode_dataset(instance.dataset, instance.transfer_syntax)) == sent


@pytest.mark.peers
def test_refusing_scp_rejects_the_association(synthetic_study: list[Path]) -> None:
    with RecordingStorageSCP(refuse_association=True) as scp:
        result = dcmtk.storescu(scp.port, synthetic_study)

        assert result.returncode != 0
        assert "Association Rejected" in result.stderr
        assert scp.rejected_associations == 1
        assert scp.stores == []


@pytest.mark.peers
def test_echoscu_verifies_the_recording_scp(storage_scp: RecordingStorageSCP) -> None:
    assert dcmtk.echoscu(storage_scp.port).returncode == 0


@pytest.mark.peers
def test_storescu_delivers_synthetic_study_to_orthanc(
    synthetic_study: list[Path], orthanc: OrthancServer
) -> None:
    result = dcmtk.storescu(
        orthanc.dicom_port, [synthetic_study[0].parent], called_ae_title=orthanc.ae_title
    )

    assert result.returncode == 0, result.stderr
    assert len(orthanc.instances()) == len(synthetic_study)
    assert len(orthanc.studies()) == 1
    assert len(orthanc.patients()) == 1
    for path in synthetic_study:
        orthanc_id = orthanc.find_by_sop_instance_uid(sop_instance_uid(path))
        assert orthanc_id is not None
        assert orthanc.instance_tags(orthanc_id)["PatientID"] == "ER-12345"
        stored = orthanc.instance_file(orthanc_id)
        assert stored.endswith(dataset_bytes(path))


@pytest.mark.peers
def test_orthanc_limited_to_explicit_little_endian_refuses_jpeg_2000(
    orthanc_factory: Callable[..., OrthancServer], synthetic_study: list[Path]
) -> None:
    pacs = orthanc_factory(accepted_transfer_syntaxes=[ExplicitVRLittleEndian])
    jpeg_2000 = next(p for p in valid_part10_images() if transfer_syntax(p) == JPEG2000)

    verbose = ["-v", "+v"]  # log the negotiated presentation contexts
    refused = dcmtk.storescu(pacs.dicom_port, [jpeg_2000], propose=JPEG2000, extra_args=verbose)
    accepted = dcmtk.storescu(pacs.dicom_port, synthetic_study[:1])

    # storescu proposed JPEG 2000 and the uncompressed syntaxes; Orthanc accepted only Explicit
    # VR Little Endian, and storescu has no JPEG 2000 decoder to convert the file to it.
    assert refused.returncode != 0
    assert "Accepted Transfer Syntax: =JPEG2000" not in refused.stderr
    assert "unable to convert dataset" in refused.stderr
    assert accepted.returncode == 0, accepted.stderr
    assert pacs.find_by_sop_instance_uid(sop_instance_uid(jpeg_2000)) is None
    assert pacs.find_by_sop_instance_uid(sop_instance_uid(synthetic_study[0])) is not None


@pytest.mark.peers
def test_orthanc_serves_dicomweb_when_asked(
    orthanc_factory: Callable[..., OrthancServer],
) -> None:
    pacs = orthanc_factory(dicomweb=True)

    assert pacs.get_json("/dicom-web/studies") == []
